package sandbox

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// sysctls is where Check reads the kernel's settings (a test gives its own).
type sysctls func(name string) (string, bool)

func procSysctl(name string) (string, bool) {
	b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(name, ".", "/"))
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

// Check tells, before anything changes, whether this machine lets an
// ordinary user run the sandbox: the kernel settings that forbid it, then
// a trial run of the namespaces' first process (which creates the
// namespaces, a TUN device and a mount, and exits).
func Check(initArgs []string) error {
	if err := checkSysctls(procSysctl); err != nil {
		return err
	}
	args := initArgs
	if len(args) == 0 {
		args = defaultInitArgs()
	}
	cmd := exec.Command(args[0], append(args[1:], probeArg)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = nsAttr(nil)
	if err := cmd.Run(); err != nil {
		return probeFailure(procSysctl, err, strings.TrimSpace(out.String()))
	}
	return nil
}

func checkSysctls(get sysctls) error {
	// Each kind of namespace the sandbox makes has its own limit, which
	// hardening guides set to 0 to forbid it.
	for _, kind := range []string{"user", "net", "mnt", "pid", "uts", "ipc"} {
		name := "user.max_" + kind + "_namespaces"
		if v, ok := get(name); ok && v == "0" {
			return &Unavailable{
				Reason: fmt.Sprintf("the kernel allows no %s namespaces (%s = 0)", kind, name),
				Remedy: fmt.Sprintf("allow them with `sudo sysctl -w %[1]s=15000`, and to keep it after a reboot, `echo %[1]s=15000 | sudo tee /etc/sysctl.d/90-userns.conf`", name),
			}
		}
	}
	if v, ok := get("kernel.unprivileged_userns_clone"); ok && v == "0" {
		return &Unavailable{
			Reason: "the kernel lets only root create user namespaces (kernel.unprivileged_userns_clone = 0)",
			Remedy: "allow them with `sudo sysctl -w kernel.unprivileged_userns_clone=1`, and to keep it after a reboot, `echo kernel.unprivileged_userns_clone=1 | sudo tee /etc/sysctl.d/90-userns.conf`",
		}
	}
	return nil
}

// probeFailure explains a trial run that failed: AppArmor's restriction
// (Ubuntu 24.04 and later) lets the namespaces be created and then denies
// every capability in them.
func probeFailure(get sysctls, err error, out string) error {
	if v, ok := get("kernel.apparmor_restrict_unprivileged_userns"); ok && v == "1" {
		self, _ := os.Executable()
		if self == "" {
			self = "/usr/local/bin/kubectl-intercept"
		}
		return &Unavailable{
			Reason: "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1)",
			Remedy: fmt.Sprintf("allow them for the plugin alone with a profile: write\n\n"+
				"    abi <abi/4.0>,\n    include <tunables/global>\n    profile kubectl-intercept %s flags=(unconfined) {\n      userns,\n    }\n\n"+
				"to /etc/apparmor.d/kubectl-intercept and load it with `sudo apparmor_parser -r /etc/apparmor.d/kubectl-intercept`"+
				" (or, for every program, `sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`)", self),
		}
	}
	if strings.Contains(out, "Linux 5.") {
		return &Unavailable{
			Reason: out,
			Remedy: "upgrade the kernel (Debian 12, Ubuntu 22.04 and RHEL 9 have what the sandbox needs), or run the command without --sandbox (it gets the cluster through HTTP_PROXY/ALL_PROXY)",
		}
	}
	reason := fmt.Sprintf("creating the namespaces as %s failed: %v", userName(), err)
	if out != "" {
		reason += " (" + out + ")"
	}
	return &Unavailable{
		Reason: reason,
		Remedy: "check that `unshare --user --map-current-user --net --mount true` works for you, and that /dev/net/tun exists; without them, run the command without --sandbox (it gets the cluster through HTTP_PROXY/ALL_PROXY)",
	}
}

func userName() string {
	if u := os.Getenv("USER"); u != "" {
		return "user " + u
	}
	return fmt.Sprintf("uid %d", os.Getuid())
}
