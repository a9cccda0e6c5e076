package sandbox

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
)

// The plugin and the namespaces' first process speak over a socketpair
// (SOCK_SEQPACKET: one message, and the descriptors it carries, at a
// time): the configuration, the TUN device's descriptor, the go-ahead,
// signals for the command, and connections to the sandbox's loopback.
type message struct {
	Op     string      `json:"op"`
	Config *initConfig `json:"config,omitempty"`
	Signal int         `json:"signal,omitempty"`
	ID     uint64      `json:"id,omitempty"`
	Port   int         `json:"port,omitempty"`
	Pid    int         `json:"pid,omitempty"`
	Code   int         `json:"code,omitempty"`
	Error  string      `json:"error,omitempty"`
}

const (
	opConfig  = "config"  // plugin -> init: what to set up
	opTUN     = "tun"     // init -> plugin: the TUN device (fd), or Error
	opListen  = "listen"  // init -> plugin: a listener on the sandbox's loopback (fd), one per loopback --local
	opReady   = "ready"   // init -> plugin: everything is set up
	opGo      = "go"      // plugin -> init: start the command
	opStarted = "started" // init -> plugin: the command runs (Pid), or Error
	opSignal  = "signal"  // plugin -> init: pass Signal on to the command
	opDial    = "dial"    // plugin -> init: connect to the sandbox's 127.0.0.1:Port
	opDialed  = "dialed"  // init -> plugin: the connection (fd) for ID, or Error
)

// initConfig is what the first process is told.
type initConfig struct {
	Argv       []string `json:"argv"`
	Env        []string `json:"env"`
	Dir        string   `json:"dir"`
	Hostname   string   `json:"hostname"`
	ResolvConf string   `json:"resolvConf"`
	Mounts     []Mount  `json:"mounts"`
	Hosts      []string `json:"hosts"`    // /etc/hosts lines for the --local names
	Loopback   []int    `json:"loopback"` // ports of this machine's loopback to show on the sandbox's
	// LoopbackAddrs are the addresses of those ports (127.0.0.1 when empty).
	LoopbackAddrs []string `json:"loopbackAddrs"`
	Address       string   `json:"address"`  // the sandbox's IPv4 address
	Address6      string   `json:"address6"` // and IPv6
	MTU           int      `json:"mtu"`
}

// ctl is one end of the socketpair.
type ctl struct {
	conn *net.UnixConn
	wmu  sync.Mutex
}

func newCtl(f *os.File) (*ctl, error) {
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("control socket is a %T", c)
	}
	return &ctl{conn: uc}, nil
}

// maxMessage bounds a message (the configuration, with the environment,
// is the largest).
const maxMessage = 4 << 20

func (c *ctl) send(m message, fd int) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	var oob []byte
	if fd >= 0 {
		oob = syscall.UnixRights(fd)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, _, err = c.conn.WriteMsgUnix(b, oob, nil)
	return err
}

// recv reads one message and the descriptor it carries (-1 when none).
func (c *ctl) recv(buf []byte) (message, int, error) {
	oob := make([]byte, syscall.CmsgSpace(4*4))
	n, oobn, _, _, err := c.conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return message{}, -1, err
	}
	if n == 0 {
		return message{}, -1, errClosed
	}
	fd := -1
	if oobn > 0 {
		msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
		if err == nil {
			for _, cm := range msgs {
				fds, err := syscall.ParseUnixRights(&cm)
				if err != nil {
					continue
				}
				for _, f := range fds {
					if fd < 0 {
						fd = f
					} else {
						syscall.Close(f)
					}
				}
			}
		}
	}
	var m message
	if err := json.Unmarshal(buf[:n], &m); err != nil {
		if fd >= 0 {
			syscall.Close(fd)
		}
		return message{}, -1, fmt.Errorf("control message: %w", err)
	}
	return m, fd, nil
}

var errClosed = fmt.Errorf("the other end closed the control socket")

// setBuffers lets the configuration pass in one message.
func setBuffers(fd int) {
	_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF, maxMessage)
	_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, maxMessage)
}
