package local

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/podenv"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/podfiles"
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
func (o *Options) mountFiles(ctx, lctx context.Context, log Log, pod *corev1.Pod, c *corev1.Container, ls *Setup) error {
	dir := o.Mount
	if dir == "" { // --sandbox alone: a directory of ours
		var err error
		if dir, err = privateFilesDir(); err != nil {
			return err
		}
		ls.privateFiles = true
	}
	tree, err := podfiles.NewTree(dir)
	if err != nil {
		if ls.privateFiles {
			_ = os.Remove(dir)
		}
		return fmt.Errorf("%s %s: %w", o.filesFlag(), dir, err)
	}
	if err := rememberMount(o.StateKey, tree); err != nil {
		_ = tree.Remove()
		return fmt.Errorf("%s: %w (without the record, a crash would leave the pod's secrets on disk)", o.filesFlag(), err)
	}
	in := podfiles.Input{Pod: pod, Container: c, Env: ls.podEnv, Objects: mountObjects{objects{o.Client, o.Namespace}}}
	count := 0
	sync := func(ctx context.Context) (int, time.Duration, error) {
		files, skipped, err := podfiles.Files(ctx, in)
		if err != nil {
			return 0, 0, err
		}
		ls.Skipped, count = skipped, len(files)
		renew, _ := podfiles.Renewal(files, time.Now())
		n, err := tree.Sync(files)
		return n, renew, err
	}
	renew, err := func() (time.Duration, error) { _, renew, err := sync(ctx); return renew, err }()
	if err != nil {
		_ = tree.Remove()
		forgetMount(o.StateKey)
		return fmt.Errorf("%s: the files of container %s: %w", o.filesFlag(), c.Name, err)
	}
	ls.Files = tree
	ls.FilesSummary = fmt.Sprintf("%d files of container %s's volumes under %s (read-only; kept up to date; removed at the end)", count, c.Name, tree.Root)
	if ls.privateFiles {
		ls.FilesSummary = fmt.Sprintf("%d files of container %s's volumes, at their mountPaths in the sandbox (read-only; kept up to date; their copy under %s is removed at the end)", count, c.Name, tree.Root)
	}
	go o.keepFiles(lctx, log, pod, renew, sync)
	return nil
}

// filesFlag names the flag that asked for the files in messages.
func (o *Options) filesFlag() string {
	if o.Mount == "" {
		return "--sandbox"
	}
	return "--mount"
}

// keepFiles watches the ConfigMaps and Secrets the volumes show and writes
// the files again when one changes, as the kubelet does; projected tokens
// are renewed at 80% of the lifetime the API server gave the last one
// (renew: 0 when there is none).
func (o *Options) keepFiles(ctx context.Context, log Log, pod *corev1.Pod, renew time.Duration, sync func(context.Context) (int, time.Duration, error)) {
	changed := make(chan struct{}, 1)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	cms, secrets := volumeObjects(pod)
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
				_, err := o.Client.CoreV1().ConfigMaps(o.Namespace).List(ctx, lo)
				return err
			}},
		{secrets, "secrets", func(f informers.SharedInformerFactory) cache.SharedIndexInformer {
			return f.Core().V1().Secrets().Informer()
		},
			func(ctx context.Context, lo metav1.ListOptions) error {
				_, err := o.Client.CoreV1().Secrets(o.Namespace).List(ctx, lo)
				return err
			}},
	} {
		for _, name := range w.names {
			sel := fields.OneTermEqualSelector("metadata.name", name).String()
			if err := w.list(ctx, metav1.ListOptions{FieldSelector: sel}); err != nil {
				if ctx.Err() == nil {
					log.Warn(fmt.Sprintf("%s: %s %s is not watched, its files are not kept up to date: %v (add the optional rule \"list, watch %s\" of docs/rbac.yaml)", o.filesFlag(), w.resource, name, err, w.resource))
				}
				continue
			}
			f := informers.NewSharedInformerFactoryWithOptions(o.Client, 0, informers.WithNamespace(o.Namespace),
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
	var due <-chan time.Time // when the tokens are renewed; nil: no token
	schedule := func(in time.Duration) {
		if due = nil; in > 0 {
			due = time.After(in)
		}
	}
	schedule(renew)
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-due:
		}
		n, next, err := sync(ctx)
		if err != nil && renew > 0 {
			next = min(renew, time.Minute) // again soon, before the token runs out
		}
		renew = next
		schedule(renew)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			log.Warn(fmt.Sprintf("%s: updating the files: %v", o.filesFlag(), err))
		case n > 0:
			log.Infof("%s: %d file(s) updated from the cluster", o.filesFlag(), n)
		}
	}
}

// volumeObjects lists the ConfigMaps and Secrets a pod's volumes show.
func volumeObjects(pod *corev1.Pod) (cms, secrets []string) {
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
				}
			}
		}
	}
	return cms, secrets
}

// What a crash leaves of --mount: the files, the pod's secrets and a token
// among them. Each intercept with --mount keeps a record of its root next
// to its local record (KEY.mount in the state directory), so close (or -c)
// removes the files after a crash: Forget calls forgetMount.

// mountRecord says where an intercept's --mount tree is and how to know it.
type mountRecord struct {
	Root string `json:"root"`
	Mark string `json:"mark"`
	PID  int    `json:"pid"`
}

func mountPath(key string) string { return filepath.Join(StateDir(), key+".mount") }

// rememberMount records the tree of the intercept key.
func rememberMount(key string, tree *podfiles.Tree) error {
	if err := os.MkdirAll(StateDir(), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", StateDir(), err)
	}
	b, err := json.Marshal(mountRecord{Root: tree.Root, Mark: tree.Mark, PID: os.Getpid()})
	if err != nil {
		return err
	}
	return podenv.WritePrivate(mountPath(key), func(w io.Writer) error { _, err := w.Write(b); return err })
}

// forgetMount removes the record of the intercept key's tree and, when
// another process wrote it (one that crashed or was stopped), the tree
// itself if it still is that tree; this process removes its own tree as
// it ends.
func forgetMount(key string) {
	b, err := os.ReadFile(mountPath(key))
	if err != nil {
		return
	}
	var rec mountRecord
	if json.Unmarshal(b, &rec) == nil && rec.PID != os.Getpid() && rec.Root != "" {
		_ = podfiles.RemoveMarked(rec.Root, rec.Mark)
	}
	_ = os.Remove(mountPath(key))
}
