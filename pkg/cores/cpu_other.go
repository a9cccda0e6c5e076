//go:build !unix

package cores

import (
	"errors"
	"time"
)

func processCPU() (time.Duration, error) {
	return 0, errors.New("no process CPU time on this system")
}
