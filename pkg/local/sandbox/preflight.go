package sandbox

import "fmt"

// Unavailable is why this machine cannot run the sandbox, and what to do.
type Unavailable struct {
	Reason, Remedy string
}

func (u *Unavailable) Error() string {
	return fmt.Sprintf("--sandbox is not available here: %s; %s. Nothing was changed in the cluster", u.Reason, u.Remedy)
}
