package demo

import (
	"context"
	"encoding/json"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
)

// The demo gRPC service is defined by hand instead of with protoc: messages
// are plain Go structs serialized with a JSON codec, and the service is a
// hand-written grpc.ServiceDesc. Clients must use the "json" content subtype
// (application/grpc+json); the helpers in this file do that for every call.

const (
	// ServiceName is the fully qualified gRPC service name.
	ServiceName = "demo.Echo"
	// EchoMethod is the full method name of the unary call.
	EchoMethod = "/demo.Echo/Echo"
	// ChatMethod is the full method name of the bidirectional streaming call.
	ChatMethod = "/demo.Echo/Chat"

	// CodecName is the gRPC content subtype of the JSON codec.
	CodecName = "json"

	// InterceptMetadataKey is the request metadata key the server looks for.
	InterceptMetadataKey = "x-c6o-intercept"
	// SeenInterceptMetadataKey is the response header metadata key in which the
	// server echoes the value of InterceptMetadataKey, when present.
	SeenInterceptMetadataKey = "x-seen-intercept"
	// PodMetadataKey is the response header metadata key carrying the pod name.
	PodMetadataKey = "x-demo-pod"
)

// Message is both the request and the reply of the demo service. The server
// echoes Message and fills Pod with its own pod name.
type Message struct {
	Message string `json:"message"`
	Pod     string `json:"pod,omitempty"`
}

// JSONCodec is a grpc encoding.Codec that marshals messages as JSON. It is
// registered under CodecName when this package is imported.
type JSONCodec struct{}

// Marshal implements encoding.Codec.
func (JSONCodec) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal implements encoding.Codec.
func (JSONCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// Name implements encoding.Codec.
func (JSONCodec) Name() string { return CodecName }

func init() {
	encoding.RegisterCodec(JSONCodec{})
}

// EchoServer is the server side of the demo.Echo service.
type EchoServer interface {
	// Echo answers a single message.
	Echo(ctx context.Context, in *Message) (*Message, error)
	// Chat answers every message received on the stream.
	Chat(stream grpc.BidiStreamingServer[Message, Message]) error
}

// EchoServiceDesc describes the demo.Echo service for grpc.Server.RegisterService.
var EchoServiceDesc = grpc.ServiceDesc{
	ServiceName: ServiceName,
	HandlerType: (*EchoServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler:    echoHandler,
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Chat",
		Handler:       chatHandler,
		ServerStreams: true,
		ClientStreams: true,
	}},
	Metadata: "demo.json",
}

// RegisterEchoServer registers srv as the demo.Echo implementation on s.
func RegisterEchoServer(s grpc.ServiceRegistrar, srv EchoServer) {
	s.RegisterService(&EchoServiceDesc, srv)
}

func echoHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := new(Message)
	if err := dec(in); err != nil {
		return nil, err
	}
	if interceptor == nil {
		return srv.(EchoServer).Echo(ctx, in)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: EchoMethod}
	handler := func(ctx context.Context, req any) (any, error) {
		return srv.(EchoServer).Echo(ctx, req.(*Message))
	}
	return interceptor(ctx, in, info, handler)
}

func chatHandler(srv any, stream grpc.ServerStream) error {
	return srv.(EchoServer).Chat(&grpc.GenericServerStream[Message, Message]{ServerStream: stream})
}

// EchoClient is the client side of the demo.Echo service.
type EchoClient struct {
	cc grpc.ClientConnInterface
}

// NewEchoClient returns a demo.Echo client using conn. Every call it makes
// uses the JSON codec, so conn needs no special options.
func NewEchoClient(conn grpc.ClientConnInterface) *EchoClient {
	return &EchoClient{cc: conn}
}

func callOptions(opts []grpc.CallOption) []grpc.CallOption {
	return append([]grpc.CallOption{grpc.CallContentSubtype(CodecName)}, opts...)
}

// Echo performs the unary call. Pass grpc.Header(&md) to read the response
// header metadata (PodMetadataKey, SeenInterceptMetadataKey).
func (c *EchoClient) Echo(ctx context.Context, in *Message, opts ...grpc.CallOption) (*Message, error) {
	out := new(Message)
	if err := c.cc.Invoke(ctx, EchoMethod, in, out, callOptions(opts)...); err != nil {
		return nil, err
	}
	return out, nil
}

// Chat opens the bidirectional stream. Send messages with Send, read the
// answers with Recv, and call CloseSend when done; the stream's Header method
// returns the response header metadata.
func (c *EchoClient) Chat(ctx context.Context, opts ...grpc.CallOption) (grpc.BidiStreamingClient[Message, Message], error) {
	stream, err := c.cc.NewStream(ctx, &EchoServiceDesc.Streams[0], ChatMethod, callOptions(opts)...)
	if err != nil {
		return nil, err
	}
	return &grpc.GenericClientStream[Message, Message]{ClientStream: stream}, nil
}
