package session

import (
	"context"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Intercepted tells whether a Service carries an intercept's record.
func Intercepted(svc *corev1.Service) bool {
	_, ok := RecordAnnotation(svc.Annotations)
	return ok
}

// RevertedError says a Service no longer points at its intercept's copy;
// Message says who switched it away (RevertMessage).
type RevertedError struct{ Message string }

func (e *RevertedError) Error() string { return e.Message }

// AskableSidecars returns the record of the Service's intercept and the
// pods of its copy whose sidecars can be asked now (Reachable); none when
// no pod is. It fails with ErrNotIntercepted when the Service carries no
// record, and with a *RevertedError when the Service's selector is no
// longer the intercept's (requests do not reach the sidecars).
func AskableSidecars(ctx context.Context, cs kubernetes.Interface, ns, name string) (*Record, []string, error) {
	svc, err := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("reading service %s/%s: %w", ns, name, err)
	}
	raw, ok := RecordAnnotation(svc.Annotations)
	if !ok {
		return nil, nil, fmt.Errorf("service %s/%s is %w", ns, name, ErrNotIntercepted)
	}
	rec, err := DecodeRecord(raw)
	if err != nil {
		return nil, nil, err
	}
	if !maps.Equal(svc.Spec.Selector, rec.SessionSelector()) {
		return nil, nil, &RevertedError{Message: RevertMessage(svc)}
	}
	all, err := CopyPods(ctx, cs, ns, rec)
	if err != nil {
		return nil, nil, err
	}
	var pods []string
	for i := range all {
		if Reachable(&all[i]) {
			pods = append(pods, all[i].Name)
		}
	}
	return rec, pods, nil
}
