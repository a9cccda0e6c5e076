// Package local is the laptop side of an intercept: the local process and
// its environment, files and network; the front where intercepted requests
// arrive (inspector, ngrok), the preview; the background process and this
// machine's records of the intercepts it started.
package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/procid"
)

// What this machine knows of the intercepts it started: one small JSON
// file per intercept in the state directory, written once the session
// exists and removed when the intercept ends by itself. A process that was
// killed leaves its file, so `kubectl intercept close` (no argument) finds
// crashed intercepts as well as running ones.

// Intercept is one intercept this machine started.
type Intercept struct {
	Context   string    `json:"context"`
	Namespace string    `json:"namespace"`
	Service   string    `json:"service"`
	Session   string    `json:"session"`
	PID       int       `json:"pid"`
	Started   time.Time `json:"started"`
	// Process proves which process holds it (pid, start time, executable,
	// token); absent in a record of an older version, which then is
	// never signaled.
	Process *procid.Identity `json:"process,omitempty"`
	// Local is what the intercept gives the local process, if anything.
	Local *Side `json:"local,omitempty"`
}

// Side is what an intercept of this machine gives its local process:
// the container's environment, the volumes' files, the proxy into the
// cluster's network, the forwards and the command.
type Side struct {
	Environment string   `json:"environment,omitempty"`
	Files       string   `json:"files,omitempty"`
	Proxy       string   `json:"proxy,omitempty"`
	Forwards    []string `json:"forwards,omitempty"`
	Command     string   `json:"command,omitempty"`
	// Sandbox is what --sandbox gives the command.
	Sandbox *SandboxSide `json:"sandbox,omitempty"`
}

// Of is this machine's live record of the intercept of ns/svc, nil
// when none holds it.
func Of(kubeContext, ns, svc string) *Intercept {
	mine, err := List(kubeContext)
	if err != nil {
		return nil
	}
	for i := range mine {
		if li := &mine[i]; li.Namespace == ns && li.Service == svc && li.Held() {
			return li
		}
	}
	return nil
}

func localPath(key string) string { return filepath.Join(StateDir(), key+".json") }

// Remember records an intercept this process holds.
func Remember(key string, li Intercept) error {
	if li.Process == nil && li.PID == os.Getpid() {
		// Without it the record still lets close clean up after a crash;
		// close then says it cannot prove the process is ours.
		li.Process, _ = ProcessIdentity()
	}
	if _, err := PrivateStateDir(); err != nil {
		return err
	}
	b, err := json.Marshal(li)
	if err != nil {
		return err
	}
	return os.WriteFile(localPath(key), b, 0o600)
}

// Forget removes the record of an intercept that ended.
func Forget(key string) {
	_ = os.Remove(localPath(key))
	forgetMount(key) // and what --mount wrote, if a crash left it
}

// List lists the intercepts this machine started in a context,
// oldest first. Files that do not read as a record (hand-edited, cut short)
// are skipped: names from them are never used unchecked.
func List(kubeContext string) ([]Intercept, error) {
	entries, err := os.ReadDir(StateDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", StateDir(), err)
	}
	var out []Intercept
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(StateDir(), e.Name()))
		if err != nil {
			continue
		}
		var li Intercept
		if json.Unmarshal(b, &li) != nil || li.Context != kubeContext || !li.valid() {
			continue
		}
		out = append(out, li)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out, nil
}

func (li Intercept) valid() bool {
	return len(validation.IsDNS1123Label(li.Namespace)) == 0 && len(validation.IsDNS1035Label(li.Service)) == 0
}

// Key names the files of li in the state directory.
func (li Intercept) Key() string { return StateKey(li.Context, li.Namespace, li.Service) }
