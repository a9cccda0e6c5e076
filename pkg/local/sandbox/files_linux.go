package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// setUpFiles makes the mount namespace the pod's view: its volumes at
// their mountPaths (read-only, never programs), this machine's daemons'
// sockets hidden (an empty /tmp of its own among them), its resolver and hosts, a /proc of the new PID
// namespace; the rest of the host's filesystem as it is. Nothing mounted
// here is seen outside, and it all goes with the namespace.
func setUpFiles(cfg *initConfig) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("making the sandbox's mounts its own: %w", err)
	}
	m := &mounter{ours: map[string]bool{}}
	// The volumes' files are taken before /tmp is covered: their copy may
	// be under this machine's /tmp.
	trees := make([]int, len(cfg.Mounts))
	for i, v := range cfg.Mounts {
		fd, err := unix.OpenTree(unix.AT_FDCWD, v.Source, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
		if err != nil {
			return fmt.Errorf("mounting %s at %s: %w", v.Source, v.Target, err)
		}
		defer unix.Close(fd)
		trees[i] = fd
	}
	// A /tmp of its own, empty, as a container's: this machine's holds
	// sockets (ssh-agent's, tmux's) a process of the developer's may open.
	if err := unix.Mount("tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
		return fmt.Errorf("a /tmp of the sandbox's own: %w", err)
	}
	m.ours["/tmp"] = true
	for i, v := range cfg.Mounts {
		if err := m.bindVolume(trees[i], v.Source, v.Target); err != nil {
			return fmt.Errorf("mounting %s at %s: %w", v.Source, v.Target, err)
		}
	}
	if err := m.hideDaemons(os.Getuid()); err != nil {
		return err
	}
	// The sandbox's own files last, so that no volume covers them.
	if err := m.bindContent("/etc/resolv.conf", cfg.ResolvConf); err != nil {
		return fmt.Errorf("the sandbox's /etc/resolv.conf: %w", err)
	}
	// nss-resolve and nss-myhostname would ask this machine's resolver (a
	// socket outside the network namespace): names go to DNS, as in a pod.
	if ns, ok := nsswitch("/etc/nsswitch.conf"); ok {
		if err := m.bindContent("/etc/nsswitch.conf", ns); err != nil {
			return fmt.Errorf("the sandbox's /etc/nsswitch.conf: %w", err)
		}
	}
	if cfg.Hostname != "" || len(cfg.Hosts) > 0 {
		hosts, _ := os.ReadFile("/etc/hosts")
		content := string(hosts)
		if content != "" && !strings.HasSuffix(content, "\n") {
			content += "\n"
		}
		if cfg.Hostname != "" {
			content += "# the pod's name, as kubectl-intercept --sandbox gives it\n" + cfg.Address + "\t" + cfg.Hostname + "\n"
		}
		if len(cfg.Hosts) > 0 {
			content += "# --local names, kept on this machine\n" + strings.Join(cfg.Hosts, "\n") + "\n"
		}
		if err := m.bindContent("/etc/hosts", content); err != nil {
			return fmt.Errorf("the sandbox's /etc/hosts: %w", err)
		}
	}
	// A /proc of the new PID namespace (ps shows the sandbox's processes);
	// where the kernel refuses it, the host's stays.
	_ = unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	if cfg.Dir != "" {
		_ = os.Chdir(cfg.Dir)
	}
	return nil
}

// nsswitch is the host's nsswitch.conf with hosts looked up in files and
// DNS alone; ok is false when the host's already does.
func nsswitch(path string) (string, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false
	}
	var out strings.Builder
	changed := false
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) > 0 && f[0] == "hosts:" {
			if strings.Join(f[1:], " ") != "files dns" {
				line, changed = "hosts: files dns", true
			}
		}
		out.WriteString(line + "\n")
	}
	return out.String(), changed
}

// mounter makes the sandbox's mounts; ours are the directories on tmpfs
// it made (covers of a host directory and what it created in them), where
// a mountpoint is made directly rather than by covering once more.
type mounter struct {
	ours map[string]bool
}

// bindContent shows content at target, read-only: a file on a tmpfs that
// is mounted nowhere (the new mount API's detached mount), so nothing is
// written on the host. (A memfd cannot be bind-mounted: it lives on the
// kernel's internal mount, outside the namespace.)
func (m *mounter) bindContent(target, content string) error {
	fsfd, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("a tmpfs for it: %w", err)
	}
	defer unix.Close(fsfd)
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fmt.Errorf("a tmpfs for it: %w", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return fmt.Errorf("a tmpfs for it: %w", err)
	}
	defer unix.Close(mfd)
	const name = "content"
	fd, err := unix.Openat(mfd, name, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	_, err = unix.Write(fd, []byte(content))
	unix.Close(fd)
	if err != nil {
		return err
	}
	if err := m.mountpoint(target, false); err != nil {
		return err
	}
	tree, err := unix.OpenTree(mfd, name, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return err
	}
	defer unix.Close(tree)
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return err
	}
	return unix.MountSetattr(unix.AT_FDCWD, target, unix.AT_SYMLINK_NOFOLLOW, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
}

// volumeAttrs make a volume's files data alone: read-only, and nothing
// in them runs, gains privileges or opens a device.
const volumeAttrs = unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOEXEC | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV

// bindVolume mounts tree (source's clone) at target with volumeAttrs,
// creating the mountpoint when there is none.
func (m *mounter) bindVolume(tree int, source, target string) error {
	var st unix.Stat_t
	if err := unix.Fstat(tree, &st); err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	if err := m.mountpoint(target, st.Mode&unix.S_IFMT == unix.S_IFDIR); err != nil {
		return err
	}
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("bind mount: %w", err)
	}
	// The volume's directory is no longer a tmpfs of ours.
	delete(m.ours, filepath.Clean(target))
	return unix.MountSetattr(unix.AT_FDCWD, target, unix.AT_RECURSIVE|unix.AT_SYMLINK_NOFOLLOW, &unix.MountAttr{Attr_set: volumeAttrs})
}

// daemonPaths are where this machine's daemons keep the sockets a process
// of the developer's may open (the session's D-Bus, systemd --user and
// its Wayland and ssh-agent sockets, the system bus, systemd, Docker,
// containerd, Podman, X11): the network namespace hides their abstract
// sockets, not their files. Each is covered with an empty tmpfs, or an
// empty read-only file.
func daemonPaths(uid int) []string {
	return []string{
		fmt.Sprintf("/run/user/%d", uid), "/run/dbus", "/run/systemd",
		"/run/docker.sock", "/var/run/docker.sock", "/run/docker", "/run/containerd", "/run/podman",
		"/tmp/.X11-unix",
	}
}

// hideDaemons covers daemonPaths inside.
func (m *mounter) hideDaemons(uid int) error {
	done := map[string]bool{}
	for _, p := range daemonPaths(uid) {
		dest, err := filepath.EvalSymlinks(p)
		if err != nil || done[dest] {
			continue
		}
		done[dest] = true
		fi, err := os.Stat(dest)
		if err != nil {
			continue
		}
		if !fi.IsDir() {
			if err := m.bindContent(dest, ""); err != nil {
				return fmt.Errorf("hiding %s from the sandbox: %w", p, err)
			}
			continue
		}
		if err := unix.Mount("tmpfs", dest, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=755"); err != nil {
			return fmt.Errorf("hiding %s from the sandbox: %w", p, err)
		}
		m.ours[dest] = true
	}
	return nil
}

// mountpoint makes target exist inside, as a file or a directory that is
// not a symlink, without writing on the host and without following a
// symlink of the host's: where it does not exist (or is a symlink), the
// deepest directory above it that does is covered (once) with a tmpfs
// that shows that directory's entries as they are (each bind-mounted from
// the directory underneath), and target is made there.
func (m *mounter) mountpoint(target string, dir bool) error {
	target = filepath.Clean(target)
	fi, err := os.Lstat(target)
	if err == nil && fi.Mode()&fs.ModeSymlink == 0 {
		return nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	symlink := err == nil
	existing := filepath.Dir(target)
	for {
		if _, err := os.Lstat(existing); err == nil {
			if fi, err := os.Stat(existing); err != nil || !fi.IsDir() {
				return fmt.Errorf("%s is not a directory on this machine", existing)
			}
			break
		}
		existing = filepath.Dir(existing)
	}
	resolved, err := filepath.EvalSymlinks(existing)
	if err != nil {
		return err
	}
	rest, _ := filepath.Rel(existing, target)
	switch {
	case m.ours[resolved]:
	case resolved == "/":
		if err := mirrorRoot(); err != nil {
			return fmt.Errorf("covering / to create %s: %w", target, err)
		}
	default:
		if err := mirror(resolved); err != nil {
			return fmt.Errorf("covering %s to create %s: %w", resolved, target, err)
		}
	}
	m.ours[resolved] = true
	full := filepath.Join(resolved, rest)
	if symlink {
		// The copy of the host's symlink on the tmpfs: replaced, not
		// followed.
		if err := os.Remove(full); err != nil {
			return err
		}
	}
	parent := full
	if !dir {
		parent = filepath.Dir(full)
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	for d := parent; d != resolved && len(d) > len(resolved); d = filepath.Dir(d) {
		m.ours[d] = true
	}
	if dir {
		return nil
	}
	fd, err := unix.Open(full, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("creating the mountpoint %s: %w", target, err)
	}
	return unix.Close(fd)
}

// mirror covers dir with a tmpfs holding its entries, each bind-mounted
// from the directory underneath (reached through a descriptor opened
// before it was covered).
func mirror(dir string) error {
	under, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(under)
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("mode=%o", fi.Mode().Perm())); err != nil {
		return err
	}
	return populate(fmt.Sprintf("/proc/self/fd/%d", under), dir, nil)
}

// populate makes every entry of from appear in to; clones are entries
// taken (open_tree) before from's mounts changed, moved in as they are.
func populate(from, to string, clones map[string]int) error {
	entries, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	for _, e := range entries {
		src := filepath.Join(from, e.Name())
		dst := filepath.Join(to, e.Name())
		if fd, ok := clones[e.Name()]; ok {
			if err := os.Mkdir(dst, 0o755); err != nil {
				return err
			}
			if err := unix.MoveMount(fd, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
				return fmt.Errorf("%s: %w", e.Name(), err)
			}
			continue
		}
		switch t := e.Type(); {
		case t&fs.ModeSymlink != 0:
			link, err := os.Readlink(src)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, dst); err != nil {
				return err
			}
			continue
		case t.IsDir():
			if err := os.Mkdir(dst, 0o755); err != nil {
				return err
			}
		default:
			f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			f.Close()
		}
		if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("%s: %w", e.Name(), err)
		}
	}
	return nil
}

// mirrorRoot does what mirror does for /, which cannot be covered in
// place: the new root is built on a tmpfs and made the root.
func mirrorRoot() error {
	// The new root's tmpfs is mounted on a directory of the old root
	// whose tree is cloned first, so that its own content still shows.
	const base = "/tmp"
	if _, err := os.Stat(base); err != nil {
		return err
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, base, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	clones := map[string]int{filepath.Base(base): fd}
	if err := unix.Mount("tmpfs", base, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=755"); err != nil {
		return err
	}
	root, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(root)
	if err := populate(fmt.Sprintf("/proc/self/fd/%d", root), base, clones); err != nil {
		return fmt.Errorf("showing / on the new root: %w", err)
	}
	old := filepath.Join(base, ".old-root")
	if err := os.Mkdir(old, 0o700); err != nil {
		return err
	}
	if err := unix.PivotRoot(base, old); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	if err := unix.Unmount("/.old-root", unix.MNT_DETACH); err != nil {
		return errors.Join(errors.New("leaving the old root"), err)
	}
	return os.Remove("/.old-root")
}
