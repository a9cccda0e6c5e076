package sandbox

import (
	"errors"
	"strings"
	"testing"
)

// Each setting that forbids the sandbox is named with its remedy.
func TestCheckSysctls(t *testing.T) {
	for _, tc := range []struct {
		name      string
		settings  map[string]string
		want      []string
		wantProbe []string
	}{
		{name: "allowed", settings: map[string]string{"user.max_user_namespaces": "63000", "kernel.unprivileged_userns_clone": "1"}},
		{name: "no user namespaces", settings: map[string]string{"user.max_user_namespaces": "0"},
			want: []string{"user.max_user_namespaces = 0", "sudo sysctl -w user.max_user_namespaces=15000", "/etc/sysctl.d/"}},
		{name: "Debian's older kernels", settings: map[string]string{"user.max_user_namespaces": "63000", "kernel.unprivileged_userns_clone": "0"},
			want: []string{"kernel.unprivileged_userns_clone = 0", "sudo sysctl -w kernel.unprivileged_userns_clone=1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			get := func(name string) (string, bool) { v, ok := tc.settings[name]; return v, ok }
			err := checkSysctls(get)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("checkSysctls: %v", err)
				}
				return
			}
			var u *Unavailable
			if !errors.As(err, &u) {
				t.Fatalf("checkSysctls = %v, want Unavailable", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q lacks %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), "Nothing was changed in the cluster") {
				t.Errorf("%q does not say that nothing changed", err)
			}
		})
	}
}

// Ubuntu 24.04 lets the namespaces be created and denies what is done in
// them: the failure names AppArmor and the profile line that allows it.
func TestProbeFailureAppArmor(t *testing.T) {
	get := func(name string) (string, bool) {
		if name == "kernel.apparmor_restrict_unprivileged_userns" {
			return "1", true
		}
		return "", false
	}
	err := probeFailure(get, errors.New("exit status 1"), "a TUN device: operation not permitted")
	for _, w := range []string{"apparmor_restrict_unprivileged_userns = 1", "userns,", "/etc/apparmor.d/kubectl-intercept", "apparmor_parser -r"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%q lacks %q", err, w)
		}
	}
	other := probeFailure(func(string) (string, bool) { return "", false }, errors.New("exit status 1"), "a TUN device: no such device")
	if !strings.Contains(other.Error(), "a TUN device: no such device") || !strings.Contains(other.Error(), "without --sandbox") {
		t.Errorf("a probe failure without AppArmor: %q", other)
	}
}

// Check runs the trial first process and passes where the tests run the
// sandbox.
func TestCheckPassesHere(t *testing.T) {
	needSandbox(t)
	if err := Check([]string{testBinary(t), InitCommand}); err != nil {
		t.Errorf("Check: %v", err)
	}
}

// Each kind of namespace the sandbox makes has a limit of its own: the one
// set to 0 is named, with its remedy, before anything changes.
func TestCheckSysctlsNamesEachNamespaceLimit(t *testing.T) {
	for _, kind := range []string{"user", "net", "mnt", "pid", "uts", "ipc"} {
		name := "user.max_" + kind + "_namespaces"
		get := func(n string) (string, bool) {
			if n == name {
				return "0", true
			}
			if strings.HasPrefix(n, "user.max_") {
				return "63000", true
			}
			return "", false
		}
		err := checkSysctls(get)
		if err == nil || !strings.Contains(err.Error(), name+" = 0") || !strings.Contains(err.Error(), "sudo sysctl -w "+name+"=") {
			t.Errorf("%s = 0: %v", name, err)
		}
	}
}

// A kernel without the new mount API is told what it needs.
func TestProbeFailureOldKernel(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	err := probeFailure(none, errors.New("exit status 1"), "this kernel has no mount_setattr, which the sandbox needs: Linux 5.12 or later has it")
	for _, w := range []string{"mount_setattr", "Linux 5.12", "upgrade the kernel", "without --sandbox"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%q lacks %q", err, w)
		}
	}
}
