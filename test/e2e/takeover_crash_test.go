//go:build e2e

package e2e

import (
	"context"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// The plugin is killed (kill -9) while it holds the original, which has a
// HorizontalPodAutoscaler, at zero. The original stays at zero, the HPA
// holding off (at zero replicas it does not scale its target), until
// close, or the end of a new intercept (which joins the session the crash
// left), gives it its replicas back; the HPA's spec is exactly as it was,
// it scales again, and the Service is restored.
//
// The local cluster has no metrics-server: the HPA exists, its controller
// runs and enforces minReplicas/maxReplicas, but it computes no metric, so
// the test checks what the HPA controller says of the target (scaling
// disabled at zero, active again after) and that its spec is untouched;
// it cannot show a scale driven by load.
func TestTakeOverCrashRestoresReplicasAndHPA(t *testing.T) {
	t.Parallel()
	for _, recovery := range []string{"close", "a new intercept"} {
		t.Run("kill -9, then "+recovery, func(t *testing.T) {
			t.Parallel()
			ns := newNamespace(t)
			deployDemo(t, ns, demoOptions{})
			createHPA(t, ns, "demo", 2, 4)
			port := laptop(t, laptopPod)
			before := takeSnapshot(t, ns, "demo")
			hpaBefore := getHPA(t, ns, "demo")

			// One state directory, as on one laptop: the close after the
			// crash is the same developer's.
			state := t.TempDir()
			p := startPluginEnv(t, []string{"XDG_STATE_HOME=" + state}, "svc/demo", "-n", ns, "-l", strconv.Itoa(port), "--take-over")
			p.waitOutput(t, "scaling deployment/demo to zero", 3*time.Minute)
			waitFor(t, 2*time.Minute, "the original at zero pods", func() bool {
				d, err := cs.AppsV1().Deployments(ns).Get(t.Context(), "demo", metav1.GetOptions{})
				return err == nil && ptr.Deref(d.Spec.Replicas, 1) == 0 && d.Status.Replicas == 0
			})
			// The HPA controller has seen the original at zero and holds off.
			waitScalingActive(t, ns, "demo", func(reason string) bool { return reason == "ScalingDisabled" })

			if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = p.cmd.Wait()
			if n := demoReplicas(t, ns); n != 0 {
				t.Fatalf("the original after kill -9: %d replicas; want it kept at 0 until close", n)
			}

			switch recovery {
			case "close":
				closeCmd := func(args ...string) string {
					cmd := pluginCmd(t, append([]string{"close", "svc/demo", "-n", ns}, args...)...)
					cmd.Env = append(cmd.Env, "XDG_STATE_HOME="+state)
					out, err := cmd.CombinedOutput()
					if err != nil {
						t.Fatalf("close after kill -9: %v\n%s", err, out)
					}
					return string(out)
				}
				out := closeCmd()
				if strings.Contains(out, "stays switched") {
					// The killed plugin's route may still count as live on the
					// sidecar; close says to use --force, as a user would.
					t.Logf("close after kill -9 kept the Service switched:\n%s", out)
					out = closeCmd("--force")
				}
				for _, want := range []string{"scaling deployment/demo back to 2 replica(s)", "HorizontalPodAutoscaler demo scales deployment/demo again (2 to 4 replicas)"} {
					if !strings.Contains(out, want) {
						t.Errorf("close does not say %q:\n%s", want, out)
					}
				}
			case "a new intercept":
				// The sidecars drop the killed plugin's route once its
				// port-forward has closed; until then the route is taken.
				waitFor(t, 2*time.Minute, "the killed intercept's route to drop", func() bool {
					out, err := runPlugin(t, "list", "-n", ns)
					return err == nil && strings.Contains(out, "idle")
				})
				q := startPluginEnv(t, []string{"XDG_STATE_HOME=" + state}, "svc/demo", "-n", ns, "-l", strconv.Itoa(port))
				q.waitOutput(t, "Intercepting service", 3*time.Minute)
				// It joins the session the crash left, taken over still:
				// the original stays at zero until its last one out.
				if n := demoReplicas(t, ns); n != 0 {
					t.Errorf("the original during the next intercept: %d replicas; want 0 (the session is taken over)", n)
				}
				q.interrupt(t)
			}

			if n := demoReplicas(t, ns); n != 2 {
				t.Fatalf("the original after %s: %d replicas; want its 2 back", recovery, n)
			}
			hpaAfter := getHPA(t, ns, "demo")
			if !reflect.DeepEqual(hpaBefore.Spec, hpaAfter.Spec) || hpaBefore.Generation != hpaAfter.Generation {
				t.Fatalf("the HPA after %s:\n%+v (generation %d)\nwant as before:\n%+v (generation %d)",
					recovery, hpaAfter.Spec, hpaAfter.Generation, hpaBefore.Spec, hpaBefore.Generation)
			}
			// The HPA scales again: no longer disabled (without metrics it
			// says it cannot read them, which it said before the take-over).
			waitScalingActive(t, ns, "demo", func(reason string) bool { return reason != "" && reason != "ScalingDisabled" })

			// The original's generation moved with its scale, down and
			// back; the rest is as it was.
			waitFor(t, 2*time.Minute, "the original's 2 pods ready", func() bool {
				d, err := cs.AppsV1().Deployments(ns).Get(t.Context(), "demo", metav1.GetOptions{})
				return err == nil && d.Status.ReadyReplicas == 2
			})
			d, err := cs.AppsV1().Deployments(ns).Get(t.Context(), "demo", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			before.DeployRV = strconv.FormatInt(d.Generation, 10)
			assertRestored(t, ns, "demo", before)
		})
	}
}

// demoReplicas is the demo Deployment's replica count.
func demoReplicas(t *testing.T, ns string) int32 {
	t.Helper()
	d, err := cs.AppsV1().Deployments(ns).Get(t.Context(), "demo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ptr.Deref(d.Spec.Replicas, 1)
}

// createHPA gives the Deployment an autoscaling/v2 HPA on CPU.
func createHPA(t *testing.T, ns, target string, least, most int32) {
	t.Helper()
	h := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: target},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: target},
			MinReplicas:    ptr.To(least),
			MaxReplicas:    most,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name:   corev1.ResourceCPU,
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](50)},
			}}},
		},
	}
	if _, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(context.Background(), h, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func getHPA(t *testing.T, ns, name string) *autoscalingv2.HorizontalPodAutoscaler {
	t.Helper()
	h, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// waitScalingActive waits until the reason of the HPA's ScalingActive
// condition is one ok accepts.
func waitScalingActive(t *testing.T, ns, name string, ok func(reason string) bool) {
	t.Helper()
	var last string
	waitFor(t, 90*time.Second, "the HPA's ScalingActive condition", func() bool {
		for _, c := range getHPA(t, ns, name).Status.Conditions {
			if c.Type == autoscalingv2.ScalingActive {
				last = c.Reason + ": " + c.Message
				return ok(c.Reason)
			}
		}
		return false
	})
	t.Logf("HPA %s: ScalingActive %s", name, last)
}
