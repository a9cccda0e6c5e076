package cli

import (
	"context"
	"fmt"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/podfiles"
)

// mountObjects reads what volumes hold, tokens included.
type mountObjects struct{ objects }

func (o mountObjects) Token(ctx context.Context, sa string, req *authv1.TokenRequest) (*authv1.TokenRequest, error) {
	tr, err := o.cs.CoreV1().ServiceAccounts(o.ns).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if apierrors.IsForbidden(err) {
		return nil, fmt.Errorf("%w (a projected service account token needs the optional rule \"create serviceaccounts/token\" of docs/rbac.yaml)", err)
	}
	return tr, err
}

// mountFiles writes the container's volume files under --mount and keeps
// them in step with their ConfigMaps and Secrets (and renews projected
// tokens) until lctx ends.
func (o *InterceptOptions) mountFiles(ctx, lctx context.Context, p *progress, pod *corev1.Pod, c *corev1.Container, ls *localSide) error {
	tree, err := podfiles.NewTree(o.Mount)
	if err != nil {
		return fmt.Errorf("--mount %s: %w", o.Mount, err)
	}
	in := podfiles.Input{Pod: pod, Container: c, Env: ls.podEnv, Objects: mountObjects{objects{o.f.Client, o.Namespace}}}
	count := 0
	sync := func(ctx context.Context) (int, error) {
		files, skipped, err := podfiles.Files(ctx, in)
		if err != nil {
			return 0, err
		}
		ls.skipped, count = skipped, len(files)
		return tree.Sync(files)
	}
	if _, err := sync(ctx); err != nil {
		_ = tree.Remove()
		return fmt.Errorf("--mount: the files of container %s: %w", c.Name, err)
	}
	ls.files = tree
	ls.filesSummary = fmt.Sprintf("%d files of container %s's volumes under %s (read-only; kept up to date; removed at the end)", count, c.Name, tree.Root)
	go o.keepFiles(lctx, p, pod, sync)
	return nil
}

// keepFiles watches the ConfigMaps and Secrets the volumes show and writes
// the files again when one changes, as the kubelet does; projected tokens
// are renewed at 80% of their lifetime.
func (o *InterceptOptions) keepFiles(ctx context.Context, p *progress, pod *corev1.Pod, sync func(context.Context) (int, error)) {
	changed := make(chan struct{}, 1)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	cms, secrets, renew := volumeObjects(pod)
	for _, w := range []struct {
		names    []string
		resource string
		informer func(informers.SharedInformerFactory) cache.SharedIndexInformer
		list     func(context.Context, metav1.ListOptions) error
	}{
		{cms, "configmaps", func(f informers.SharedInformerFactory) cache.SharedIndexInformer {
			return f.Core().V1().ConfigMaps().Informer()
		},
			func(ctx context.Context, lo metav1.ListOptions) error {
				_, err := o.f.Client.CoreV1().ConfigMaps(o.Namespace).List(ctx, lo)
				return err
			}},
		{secrets, "secrets", func(f informers.SharedInformerFactory) cache.SharedIndexInformer {
			return f.Core().V1().Secrets().Informer()
		},
			func(ctx context.Context, lo metav1.ListOptions) error {
				_, err := o.f.Client.CoreV1().Secrets(o.Namespace).List(ctx, lo)
				return err
			}},
	} {
		for _, name := range w.names {
			sel := fields.OneTermEqualSelector("metadata.name", name).String()
			if err := w.list(ctx, metav1.ListOptions{FieldSelector: sel}); err != nil {
				if ctx.Err() == nil {
					p.Warn(fmt.Sprintf("--mount: %s %s is not watched, its files are not kept up to date: %v (add the optional rule \"list, watch %s\" of docs/rbac.yaml)", w.resource, name, err, w.resource))
				}
				continue
			}
			f := informers.NewSharedInformerFactoryWithOptions(o.f.Client, 0, informers.WithNamespace(o.Namespace),
				informers.WithTweakListOptions(func(lo *metav1.ListOptions) { lo.FieldSelector = sel }))
			inf := w.informer(f)
			_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
				UpdateFunc: func(any, any) { notify() },
				DeleteFunc: func(any) { notify() },
				AddFunc:    func(any) { notify() },
			})
			f.Start(ctx.Done())
		}
	}
	var tick <-chan time.Time
	if renew > 0 {
		t := time.NewTicker(renew * 8 / 10)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-tick:
		}
		n, err := sync(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			p.Warn(fmt.Sprintf("--mount: updating the files: %v", err))
		case n > 0:
			p.Infof("--mount: %d file(s) updated from the cluster", n)
		}
	}
}

// volumeObjects lists the ConfigMaps and Secrets a pod's volumes show, and
// the shortest lifetime of its projected tokens (0: none).
func volumeObjects(pod *corev1.Pod) (cms, secrets []string, renew time.Duration) {
	seen := map[string]bool{}
	add := func(list *[]string, kind, name string) {
		if !seen[kind+"/"+name] {
			seen[kind+"/"+name] = true
			*list = append(*list, name)
		}
	}
	for _, v := range pod.Spec.Volumes {
		switch {
		case v.ConfigMap != nil:
			add(&cms, "cm", v.ConfigMap.Name)
		case v.Secret != nil:
			add(&secrets, "secret", v.Secret.SecretName)
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				switch {
				case src.ConfigMap != nil:
					add(&cms, "cm", src.ConfigMap.Name)
				case src.Secret != nil:
					add(&secrets, "secret", src.Secret.Name)
				case src.ServiceAccountToken != nil:
					life := time.Hour
					if s := src.ServiceAccountToken.ExpirationSeconds; s != nil {
						life = time.Duration(*s) * time.Second
					}
					if renew == 0 || life < renew {
						renew = life
					}
				}
			}
		}
	}
	return cms, secrets, renew
}
