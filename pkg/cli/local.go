package cli

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

	"github.com/kubectl-intercept/kubectl-intercept/pkg/procid"
)

// What this machine knows of the intercepts it started: one small JSON
// file per intercept in the state directory, written once the session
// exists and removed when the intercept ends by itself. A process that was
// killed leaves its file, so `kubectl intercept close` (no argument) finds
// crashed intercepts as well as running ones.

// localIntercept is one intercept this machine started.
type localIntercept struct {
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
	Local *LocalSide `json:"local,omitempty"`
}

// LocalSide is what an intercept of this machine gives its local process:
// the container's environment, the volumes' files, the proxy into the
// cluster's network, the forwards and the command.
type LocalSide struct {
	Environment string   `json:"environment,omitempty"`
	Files       string   `json:"files,omitempty"`
	Proxy       string   `json:"proxy,omitempty"`
	Forwards    []string `json:"forwards,omitempty"`
	Command     string   `json:"command,omitempty"`
}

// localOf is this machine's live record of the intercept of ns/svc, nil
// when none holds it.
func localOf(kubeContext, ns, svc string) *localIntercept {
	mine, err := localIntercepts(kubeContext)
	if err != nil {
		return nil
	}
	for i := range mine {
		if li := &mine[i]; li.Namespace == ns && li.Service == svc && li.held() {
			return li
		}
	}
	return nil
}

func localPath(key string) string { return filepath.Join(stateDir(), key+".json") }

// rememberLocal records an intercept this process holds.
func rememberLocal(key string, li localIntercept) error {
	if li.Process == nil && li.PID == os.Getpid() {
		// Without it the record still lets close clean up after a crash;
		// close then says it cannot prove the process is ours.
		li.Process, _ = processIdentity()
	}
	if _, err := privateStateDir(); err != nil {
		return err
	}
	b, err := json.Marshal(li)
	if err != nil {
		return err
	}
	return os.WriteFile(localPath(key), b, 0o600)
}

// forgetLocal removes the record of an intercept that ended.
func forgetLocal(key string) {
	_ = os.Remove(localPath(key))
	forgetMount(key) // and what --mount wrote, if a crash left it
}

// localIntercepts lists the intercepts this machine started in a context,
// oldest first. Files that do not read as a record (hand-edited, cut short)
// are skipped: names from them are never used unchecked.
func localIntercepts(kubeContext string) ([]localIntercept, error) {
	entries, err := os.ReadDir(stateDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", stateDir(), err)
	}
	var out []localIntercept
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(stateDir(), e.Name()))
		if err != nil {
			continue
		}
		var li localIntercept
		if json.Unmarshal(b, &li) != nil || li.Context != kubeContext || !li.valid() {
			continue
		}
		out = append(out, li)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out, nil
}

func (li localIntercept) valid() bool {
	return len(validation.IsDNS1123Label(li.Namespace)) == 0 && len(validation.IsDNS1035Label(li.Service)) == 0
}

func (li localIntercept) key() string { return stateKey(li.Context, li.Namespace, li.Service) }
