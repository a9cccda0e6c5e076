//go:build e2e

package e2e

import (
	"context"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/demo"
)

// namedLaptop runs the demo app on this machine answering as name: HTTP,
// h2c and gRPC on one port.
func namedLaptop(t *testing.T, name string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := demo.NewServer(demo.Config{Pod: name}).HTTPServer("")
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// A Service with an HTTP port and a gRPC port, intercepted on both with -p
// twice: each port's header requests reach its own local port, the rest
// reach the cluster; close restores both ports.
func TestTwoPortsInOneIntercept(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{
		deploymentMutate: func(d *appsv1.Deployment) {
			spec := &d.Spec.Template.Spec
			grpcApp := spec.Containers[0]
			grpcApp.Name = "grpc"
			grpcApp.Args = []string{"--listen=:8081", "--tcp-listen=", "--raw-listen="}
			grpcApp.Ports = []corev1.ContainerPort{{Name: "grpc", ContainerPort: 8081}}
			grpcApp.ReadinessProbe = nil
			spec.Containers = append(spec.Containers, grpcApp)
		},
		serviceMutate: func(s *corev1.Service) {
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "grpc", Port: 9000, TargetPort: intstr.FromInt32(8081),
				Protocol: corev1.ProtocolTCP, AppProtocol: ptr.To("kubernetes.io/h2c")})
		},
	})
	before := takeSnapshot(t, ns, "demo")
	httpPort, grpcPort := namedLaptop(t, "laptop-http"), namedLaptop(t, "laptop-grpc")

	p := startPlugin(t, "svc/demo", "-n", ns, "-p", strconv.Itoa(httpPort)+":http", "-p", strconv.Itoa(grpcPort)+":9000")
	p.waitOutput(t, "Intercepting service", 2*time.Minute)
	for _, want := range []string{"port http to localhost:" + strconv.Itoa(httpPort), "port grpc to localhost:" + strconv.Itoa(grpcPort)} {
		if !strings.Contains(p.output(), want) {
			t.Errorf("the active message lacks %q:\n%s", want, p.output())
		}
	}

	for i := range 10 {
		if got := routedTo(t, svc, header("X-C6O-INTERCEPT", "yes")); got != "laptop-http" {
			t.Fatalf("HTTP header request %d reached %q, want laptop-http", i+1, got)
		}
		if got := routedTo(t, svc, nil); !strings.HasPrefix(got, "demo-") {
			t.Fatalf("HTTP request %d without the header reached %q, want the cluster", i+1, got)
		}
	}

	conn, err := grpc.NewClient("passthrough:///"+net.JoinHostPort(svc.Spec.ClusterIP, "9000"), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithContextDialer(dialGRPC))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := demo.NewEchoClient(conn)
	for i := range 10 {
		for _, c := range []struct {
			md   []string
			want func(string) bool
		}{
			{[]string{"x-c6o-intercept", "yes"}, func(pod string) bool { return pod == "laptop-grpc" }},
			{nil, func(pod string) bool { return strings.HasPrefix(pod, "demo-") }},
		} {
			ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), c.md...), 10*time.Second)
			reply, err := client.Echo(ctx, &demo.Message{Message: "hi"})
			cancel()
			if err != nil || !c.want(reply.Pod) {
				t.Fatalf("gRPC call %d with metadata %v answered %+v, %v", i+1, c.md, reply, err)
			}
		}
	}

	status, err := runPlugin(t, "status", "svc/demo", "-n", ns)
	if err != nil || !strings.Contains(status, "ports http,grpc") || !strings.Contains(status, "on port grpc") {
		t.Errorf("status does not show both ports and their routes (%v):\n%s", err, status)
	}
	list, err := runPlugin(t, "list", "-n", ns)
	if err != nil || !strings.Contains(list, "http,grpc") {
		t.Errorf("list does not show both ports (%v):\n%s", err, list)
	}

	p.cmd.Process.Signal(syscall.SIGINT)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("the intercept ended with %v:\n%s", err, p.output())
	}
	assertRestored(t, ns, "demo", before)
}
