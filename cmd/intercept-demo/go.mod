module github.com/kubectl-intercept/kubectl-intercept/cmd/intercept-demo

go 1.26.0

toolchain go1.27.3

require github.com/kubectl-intercept/kubectl-intercept/pkg/demo v0.0.0

require (
	github.com/coder/websocket v1.8.15 // indirect
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.42.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
	google.golang.org/grpc v1.85.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

// The demo library beside it in this repository.
replace github.com/kubectl-intercept/kubectl-intercept/pkg/demo => ../../pkg/demo
