package inspect

import (
	"errors"
	"syscall"
)

// wsaeaddrinuse is Winsock's "address already in use"; syscall.EADDRINUSE
// is a different number there.
const wsaeaddrinuse = syscall.Errno(10048)

func addrInUse(err error) bool {
	return errors.Is(err, wsaeaddrinuse) || errors.Is(err, syscall.EADDRINUSE)
}
