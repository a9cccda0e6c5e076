// Package podfiles lays out, on the developer's machine, the files a
// container sees in its ConfigMap, Secret, downwardAPI and projected
// volumes (a service account token included), at their mountPaths under a
// root directory, with the volumes' items, modes and subPaths, as the
// kubelet writes them. Volumes whose content is not in the API (emptyDir,
// persistent claims, hostPath...) are listed with the reason.
package podfiles

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/podenv"
)

// File is one file of a container's volumes.
type File struct {
	// Path is relative to the root: the mountPath, then the file's path in
	// the volume.
	Path string
	Data []byte
	Mode fs.FileMode
	// Expires is when a service account token expires, as the API server
	// answered (zero for other files).
	Expires time.Time
}

// Renewal is how long until the tokens among files are to be requested
// again, as the kubelet renews them: at 80% of the lifetime the API server
// returned (which may differ from the one asked for), at most a day on,
// at least ten seconds on. ok is false when there is no token.
func Renewal(files []File, now time.Time) (d time.Duration, ok bool) {
	for _, f := range files {
		if f.Expires.IsZero() {
			continue
		}
		in := min(f.Expires.Sub(now)*8/10, 24*time.Hour)
		if !ok || in < d {
			d, ok = in, true
		}
	}
	return max(d, 10*time.Second), ok
}

// Skipped is a volume mount whose files cannot be copied, and why.
type Skipped struct {
	Mount, Volume, Reason string
}

// Objects reads what volumes hold.
type Objects interface {
	podenv.Objects
	// Token requests a token for the pod's service account (TokenRequest).
	Token(ctx context.Context, serviceAccount string, req *authv1.TokenRequest) (*authv1.TokenRequest, error)
}

// Input is what the files are made from.
type Input struct {
	Pod       *corev1.Pod
	Container *corev1.Container
	// Env is the container's environment, for subPathExpr.
	Env     []podenv.Var
	Objects Objects
}

// The kubelet's default file mode for ConfigMap, Secret, downwardAPI and
// projected volumes.
const defaultMode = 0o644

// Files returns the files of every mount of the container whose volume
// can be copied, and the mounts that cannot.
func Files(ctx context.Context, in Input) ([]File, []Skipped, error) {
	vols := map[string]*corev1.Volume{}
	for i := range in.Pod.Spec.Volumes {
		vols[in.Pod.Spec.Volumes[i].Name] = &in.Pod.Spec.Volumes[i]
	}
	var files []File
	var skipped []Skipped
	for _, m := range in.Container.VolumeMounts {
		v := vols[m.Name]
		if v == nil {
			continue
		}
		content, reason, err := volumeFiles(ctx, in, v)
		if apierrors.IsForbidden(err) {
			// Not the developer's to read: the mount is listed, not fatal.
			content, reason, err = nil, err.Error(), nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("volume %s (mounted at %s): %w", v.Name, m.MountPath, err)
		}
		if reason != "" {
			skipped = append(skipped, Skipped{Mount: m.MountPath, Volume: v.Name, Reason: reason})
			continue
		}
		sub := m.SubPath
		if m.SubPathExpr != "" {
			sub = podenv.Expand(m.SubPathExpr, lookup(in.Env))
		}
		files = append(files, mountFiles(content, strings.TrimPrefix(path.Clean("/"+m.MountPath), "/"), path.Clean(sub))...)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, skipped, nil
}

func lookup(vars []podenv.Var) func(string) (string, bool) {
	return func(name string) (string, bool) {
		for _, v := range vars {
			if v.Name == name {
				return v.Value, true
			}
		}
		return "", false
	}
}

// mountFiles places a volume's files at mountPath; with a subPath, only
// that file or directory of the volume, as the mountPath itself.
func mountFiles(content []File, mountPath, sub string) []File {
	var out []File
	for _, f := range content {
		p := f.Path
		if sub != "." && sub != "" {
			switch {
			case p == sub:
				p = ""
			case strings.HasPrefix(p, sub+"/"):
				p = strings.TrimPrefix(p, sub+"/")
			default:
				continue
			}
		}
		f.Path = path.Join(mountPath, p)
		out = append(out, f)
	}
	return out
}

// volumeFiles is a volume's content; reason is set when it cannot be
// copied.
func volumeFiles(ctx context.Context, in Input, v *corev1.Volume) ([]File, string, error) {
	switch {
	case v.ConfigMap != nil:
		return configMapFiles(ctx, in, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional, mode(v.ConfigMap.DefaultMode))
	case v.Secret != nil:
		return secretFiles(ctx, in, v.Secret.SecretName, v.Secret.Items, v.Secret.Optional, mode(v.Secret.DefaultMode))
	case v.DownwardAPI != nil:
		f, err := downwardFiles(in, v.DownwardAPI.Items, mode(v.DownwardAPI.DefaultMode))
		return f, "", err
	case v.Projected != nil:
		return projectedFiles(ctx, in, v.Projected)
	case v.EmptyDir != nil:
		return nil, "an emptyDir starts empty in each pod: there is nothing to copy", nil
	case v.PersistentVolumeClaim != nil:
		return nil, "a persistent volume's data is on the volume, not in the API", nil
	case v.HostPath != nil:
		return nil, "a hostPath is a node's directory", nil
	case v.Ephemeral != nil:
		return nil, "an ephemeral volume starts empty in each pod", nil
	case v.Image != nil:
		return nil, "an image volume is not in the API", nil
	}
	return nil, "this kind of volume is not in the API", nil
}

func mode(m *int32) fs.FileMode {
	if m == nil {
		return defaultMode
	}
	return fs.FileMode(*m) & fs.ModePerm
}

func itemMode(m *int32, def fs.FileMode) fs.FileMode {
	if m == nil {
		return def
	}
	return fs.FileMode(*m) & fs.ModePerm
}

// keyed lays out keys as files: the items given (a missing key is an error
// unless optional), or every key.
func keyed(data map[string][]byte, items []corev1.KeyToPath, optional bool, def fs.FileMode, what string) ([]File, error) {
	if len(items) == 0 {
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		out := make([]File, 0, len(keys))
		for _, k := range keys {
			out = append(out, File{Path: k, Data: data[k], Mode: def})
		}
		return out, nil
	}
	var out []File
	for _, it := range items {
		b, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return nil, fmt.Errorf("%s has no key %q", what, it.Key)
		}
		out = append(out, File{Path: path.Clean(it.Path), Data: b, Mode: itemMode(it.Mode, def)})
	}
	return out, nil
}

func configMapFiles(ctx context.Context, in Input, name string, items []corev1.KeyToPath, optional *bool, def fs.FileMode) ([]File, string, error) {
	cm, err := in.Objects.ConfigMap(ctx, name)
	if apierrors.IsNotFound(err) && optional != nil && *optional {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	f, err := keyed(data, items, optional != nil && *optional, def, "configmap "+name)
	return f, "", err
}

func secretFiles(ctx context.Context, in Input, name string, items []corev1.KeyToPath, optional *bool, def fs.FileMode) ([]File, string, error) {
	s, err := in.Objects.Secret(ctx, name)
	if apierrors.IsNotFound(err) && optional != nil && *optional {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	f, err := keyed(s.Data, items, optional != nil && *optional, def, "secret "+name)
	return f, "", err
}

// downwardFiles renders downwardAPI items as the kubelet does: a field's
// value, a whole labels or annotations map as key="value" lines, sorted.
func downwardFiles(in Input, items []corev1.DownwardAPIVolumeFile, def fs.FileMode) ([]File, error) {
	var out []File
	for _, it := range items {
		var value string
		switch {
		case it.FieldRef != nil && (it.FieldRef.FieldPath == "metadata.labels" || it.FieldRef.FieldPath == "metadata.annotations"):
			m := in.Pod.Labels
			if it.FieldRef.FieldPath == "metadata.annotations" {
				m = in.Pod.Annotations
			}
			value = renderMap(m)
		case it.FieldRef != nil:
			v, err := podenv.FieldValue(in.Pod, it.FieldRef.FieldPath)
			if err != nil {
				return nil, err
			}
			value = v
		case it.ResourceFieldRef != nil:
			c := *in.Container
			c.Env = []corev1.EnvVar{{Name: "V", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: it.ResourceFieldRef}}}
			c.EnvFrom = nil
			vars, err := podenv.Resolve(context.Background(), podenv.Input{Pod: in.Pod, Container: &c, Objects: in.Objects})
			if err != nil {
				return nil, err
			}
			value = vars[0].Value
		}
		out = append(out, File{Path: path.Clean(it.Path), Data: []byte(value), Mode: itemMode(it.Mode, def)})
	}
	return out, nil
}

func renderMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s=%q", k, m[k])
	}
	return b.String()
}

// projectedFiles merges a projected volume's sources.
func projectedFiles(ctx context.Context, in Input, p *corev1.ProjectedVolumeSource) ([]File, string, error) {
	def := mode(p.DefaultMode)
	var out []File
	for _, src := range p.Sources {
		var f []File
		var err error
		switch {
		case src.ConfigMap != nil:
			f, _, err = configMapFiles(ctx, in, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional, def)
		case src.Secret != nil:
			f, _, err = secretFiles(ctx, in, src.Secret.Name, src.Secret.Items, src.Secret.Optional, def)
		case src.DownwardAPI != nil:
			f, err = downwardFiles(in, src.DownwardAPI.Items, def)
		case src.ServiceAccountToken != nil:
			f, err = tokenFile(ctx, in, src.ServiceAccountToken, def)
		default:
			return nil, "a projected source other than configMap, secret, downwardAPI and serviceAccountToken", nil
		}
		if err != nil {
			return nil, "", err
		}
		out = append(out, f...)
	}
	return out, "", nil
}

// tokenFile requests the service account token the kubelet would project:
// the pod's service account, the source's audience and lifetime, bound to
// the pod.
func tokenFile(ctx context.Context, in Input, src *corev1.ServiceAccountTokenProjection, def fs.FileMode) ([]File, error) {
	sa := in.Pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	req := &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: src.ExpirationSeconds}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	if in.Pod.UID != "" {
		req.Spec.BoundObjectRef = &authv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: in.Pod.Name, UID: in.Pod.UID}
	}
	tr, err := in.Objects.Token(ctx, sa, req)
	if err != nil {
		return nil, fmt.Errorf("requesting a token for service account %s: %w", sa, err)
	}
	return []File{{Path: path.Clean(src.Path), Data: []byte(tr.Status.Token), Mode: def, Expires: tr.Status.ExpirationTimestamp.Time}}, nil
}
