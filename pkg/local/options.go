package local

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/sandbox"
)

// The local side: what the developer's process gets of the pod it stands
// in for. Its environment (resolved as the kubelet would for the
// intercepted container), the cluster's network (a SOCKS5 and HTTP proxy
// on loopback, and port forwards, whose connections leave from a copy pod
// through the developer's tunnel), and a command to run with both.

// Forward is one --forward [LOCAL_PORT:]HOST:PORT.
type Forward struct {
	Local  int
	Target string // HOST:PORT, resolved and dialed in the pod
}

// ParseForward reads [LOCAL_PORT:]HOST:PORT; without LOCAL_PORT the local
// port is the remote one.
func ParseForward(s string) (Forward, error) {
	bad := fmt.Errorf("--forward %q: want [LOCAL_PORT:]HOST:PORT, e.g. --forward 5432:postgres.db:5432", s)
	if i := strings.IndexByte(s, ':'); i > 0 && isDigits(s[:i]) {
		if host, port, err := net.SplitHostPort(s[i+1:]); err == nil && host != "" && validPort(port) {
			n, _ := strconv.Atoi(s[:i])
			if n < 1 || n > 65535 {
				return Forward{}, bad
			}
			return Forward{Local: n, Target: net.JoinHostPort(host, port)}, nil
		}
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" || !validPort(port) {
		return Forward{}, bad
	}
	n, _ := strconv.Atoi(port)
	return Forward{Local: n, Target: net.JoinHostPort(host, port)}, nil
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 1 && n <= 65535
}

// CheckMountDir checks --mount's directory without the network: a new or
// empty directory, never a symbolic link.
func CheckMountDir(dir string) error {
	if fi, err := os.Lstat(dir); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("--mount %s is a symbolic link: give a directory itself (the pod's secrets are written there and removed at the end)", dir)
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("--mount %s: the directory is not empty; give a new or empty one (it is removed when the intercept ends)", dir)
	}
	return nil
}

// Options say what the local process gets of the pod it stands in for.
type Options struct {
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
	// Namespace and Service are the intercepted Service's.
	Namespace, Service string
	// RemotePort is the Service port whose serving container the local
	// process stands in for, unless Container names one.
	RemotePort string
	Container  string
	// EnvFile and EnvJSON are files the container's environment is
	// written to; EnvAllow names variables of the pod taken in although
	// they could run code or change tools on this machine.
	EnvFile, EnvJSON string
	EnvAllow         []string
	// Mount is the directory the volumes' files are written under.
	Mount    string
	Forwards []Forward
	// Network runs the local proxy into the cluster's network.
	Network bool
	// Command is the local process (after --), if any.
	Command []string
	// StateKey names this intercept's records on this machine.
	StateKey string
	// Sandbox runs Command in the sandbox (--sandbox); Locals are the
	// destinations it dials from this machine (--local); prep what
	// PrepareSandbox took.
	Sandbox bool
	Locals  []sandbox.Local
	// Cover are the mountPaths whose volumes may cover a path of this
	// machine (--sandbox-cover).
	Cover []string
	prep  *sandboxPrep
}

// Log is where the local side reports: the command's progress.
type Log interface {
	Infof(format string, args ...any)
	Warn(msg string)
}

// WantsEnv tells whether the local side needs the container's environment
// (--mount too: subPathExpr reads it).
func (o *Options) WantsEnv() bool {
	return len(o.Command) > 0 || o.EnvFile != "" || o.EnvJSON != "" || o.Mount != ""
}

// WantsNetwork tells whether the local proxy runs: for a command (not one
// in the sandbox, whose connections reach the cluster without it) or
// --network.
func (o *Options) WantsNetwork() bool { return (len(o.Command) > 0 && !o.Sandbox) || o.Network }
