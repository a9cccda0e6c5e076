//go:build !windows

package podenv

import "syscall"

const oNoFollow = syscall.O_NOFOLLOW
