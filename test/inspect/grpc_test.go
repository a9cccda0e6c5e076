package inspect_test

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/inspect"
)

// A real gRPC client reaches a real gRPC server through the forwarder, both
// a unary call and a server stream; the exchange keeps grpc-status.
func TestForwardRealGRPC(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("orders", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(ln) }() // returns at srv.Stop
	defer srv.Stop()

	base, store := forwarding(t, ln.Addr().String())
	conn, err := grpc.NewClient(base[len("http://"):], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := healthpb.NewHealthClient(conn)

	resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "orders"})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("unary call through the forwarder: %v, %v", resp, err)
	}
	watch, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := watch.Recv()
	if err != nil || first.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first streamed message: %v, %v", first, err)
	}
	hs.SetServingStatus("orders", healthpb.HealthCheckResponse_NOT_SERVING)
	second, err := watch.Recv()
	if err != nil || second.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("second streamed message: %v, %v", second, err)
	}

	check := waitFor(t, store, "the unary call recorded", func(l []inspect.Exchange) bool {
		return len(l) == 2 && l[1].Done
	})[1]
	if check.Path != "/grpc.health.v1.Health/Check" || check.Proto != "HTTP/2.0" || check.ResponseTrailer.Get("Grpc-Status") != "0" {
		t.Errorf("recorded %s %s, trailers %v", check.Path, check.Proto, check.ResponseTrailer)
	}
}
