package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// newCRIResetCommand stops and removes every pod sandbox through the CRI, so
// the runtime runs CNI DEL and removes each pod's network namespace before
// the cluster's processes are stopped.
func newCRIResetCommand() *cobra.Command {
	var endpoint string
	cmd := &cobra.Command{
		Use:   "cri-reset --endpoint unix:///path/containerd.sock",
		Short: "Stop and remove every pod sandbox known to a CRI runtime",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 60*time.Second)
			defer cancel()
			return criReset(ctx, endpoint)
		},
	}
	cmd.Flags().StringVar(&endpoint, "endpoint", "", "CRI endpoint")
	return cmd
}

func criReset(ctx context.Context, endpoint string) error {
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("connecting to CRI at %s: %w", endpoint, err)
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	pods, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("listing pod sandboxes: %w", err)
	}
	var failed int
	for _, p := range pods.Items {
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			fmt.Printf("stop %s/%s: %v\n", p.Metadata.GetNamespace(), p.Metadata.GetName(), err)
			failed++
			continue
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			fmt.Printf("remove %s/%s: %v\n", p.Metadata.GetNamespace(), p.Metadata.GetName(), err)
			failed++
		}
	}
	fmt.Printf("removed %d of %d pod sandboxes\n", len(pods.Items)-failed, len(pods.Items))
	if failed > 0 {
		return fmt.Errorf("%d pod sandboxes could not be removed", failed)
	}
	return nil
}
