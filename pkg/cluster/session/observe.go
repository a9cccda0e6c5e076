package session

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Everything the start, the close and a running intercept wait for is
// watched, not polled: a cache per kind of object, filled by one list and
// then kept by a watch, and a signal on every change. While nothing changes
// nothing is requested.

// Watched is a watched set of objects of one kind: the ones in a namespace
// that a label selector (and, optionally, a name) select.
type Watched[T metav1.Object] struct {
	store cache.Store
	match func(metav1.Object) bool
}

// Items returns the objects as the watch last saw them.
func (w *Watched[T]) Items() []T {
	var out []T
	for _, o := range w.store.List() {
		if t, ok := o.(T); ok && w.match(t) {
			out = append(out, t)
		}
	}
	return out
}

// Get returns the object called name, if it is there.
func (w *Watched[T]) Get(name string) (T, bool) {
	var zero T
	for _, o := range w.Items() {
		if o.GetName() == name {
			return o, true
		}
	}
	return zero, false
}

// selection says which objects of a kind are watched.
type selection struct {
	namespace string
	labels    labels.Selector // nil: every label
	name      string          // empty: every name
}

func (s selection) options(o *metav1.ListOptions) {
	if s.labels != nil {
		o.LabelSelector = s.labels.String()
	}
	if s.name != "" {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", s.name).String()
	}
}

// match checks again what the server selected (a fake clientset's watch
// does not filter).
func (s selection) match(o metav1.Object) bool {
	return (s.labels == nil || s.labels.Matches(labels.Set(o.GetLabels()))) && (s.name == "" || o.GetName() == s.name)
}

type listFunc func(context.Context, metav1.ListOptions) (runtime.Object, error)
type watchFunc func(context.Context, metav1.ListOptions) (watch.Interface, error)

// watchKind starts a watch of the objects sel selects; every change is
// signaled on changed (without blocking). It returns once the first list
// is in, and the watch ends with ctx.
func watchKind[T metav1.Object](ctx context.Context, client any, example runtime.Object, list listFunc, wf watchFunc, sel selection, changed chan<- struct{}) (*Watched[T], error) {
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			sel.options(&o)
			return list(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			sel.options(&o)
			return wf(ctx, o)
		},
	}
	// A client that cannot stream the first list as watch events (a fake
	// clientset) gets a plain list and watch.
	inf := cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, client), example, 0, cache.Indexers{})
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(any, any) { notify() },
		DeleteFunc: func(any) { notify() },
	}); err != nil {
		return nil, err
	}
	go inf.RunWithContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return nil, fmt.Errorf("watching %T: %w", example, context.Cause(ctx))
	}
	notify()
	return &Watched[T]{store: inf.GetStore(), match: sel.match}, nil
}

// WatchPods watches the pods of ns that sel selects.
func WatchPods(ctx context.Context, cs kubernetes.Interface, ns string, sel labels.Selector, changed chan<- struct{}) (*Watched[*corev1.Pod], error) {
	c := cs.CoreV1().Pods(ns)
	return watchKind[*corev1.Pod](ctx, cs, &corev1.Pod{},
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) },
		c.Watch, selection{namespace: ns, labels: sel}, changed)
}

// watchDeployment watches one Deployment by name.
func watchDeployment(ctx context.Context, cs kubernetes.Interface, ns, name string, changed chan<- struct{}) (*Watched[*appsv1.Deployment], error) {
	c := cs.AppsV1().Deployments(ns)
	return watchKind[*appsv1.Deployment](ctx, cs, &appsv1.Deployment{},
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) },
		c.Watch, selection{namespace: ns, name: name}, changed)
}

// watchReplicaSets watches the ReplicaSets of ns that sel selects.
func watchReplicaSets(ctx context.Context, cs kubernetes.Interface, ns string, sel labels.Selector, changed chan<- struct{}) (*Watched[*appsv1.ReplicaSet], error) {
	c := cs.AppsV1().ReplicaSets(ns)
	return watchKind[*appsv1.ReplicaSet](ctx, cs, &appsv1.ReplicaSet{},
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) },
		c.Watch, selection{namespace: ns, labels: sel}, changed)
}

// watchService watches one Service by name.
func watchService(ctx context.Context, cs kubernetes.Interface, ns, name string, changed chan<- struct{}) (*Watched[*corev1.Service], error) {
	c := cs.CoreV1().Services(ns)
	return watchKind[*corev1.Service](ctx, cs, &corev1.Service{},
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) },
		c.Watch, selection{namespace: ns, name: name}, changed)
}

// watchEndpointSlices watches the EndpointSlices of one Service.
func watchEndpointSlices(ctx context.Context, cs kubernetes.Interface, ns, service string, changed chan<- struct{}) (*Watched[*discoveryv1.EndpointSlice], error) {
	c := cs.DiscoveryV1().EndpointSlices(ns)
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: service})
	return watchKind[*discoveryv1.EndpointSlice](ctx, cs, &discoveryv1.EndpointSlice{},
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) },
		c.Watch, selection{namespace: ns, labels: sel}, changed)
}

// sessionPods selects the pods of a session's copy.
func sessionPods(id string) labels.Selector {
	return labels.SelectorFromSet(labels.Set{LabelSession: id})
}

// waitChanges calls check after every change until it says done, fails, or
// ctx ends (then onTimeout's error).
func waitChanges(ctx context.Context, changed <-chan struct{}, check func() (bool, error), onTimeout func() error) error {
	for {
		select {
		case <-ctx.Done():
			return onTimeout()
		case <-changed:
		}
		done, err := check()
		if err != nil || done {
			return err
		}
	}
}
