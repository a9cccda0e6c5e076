package route

// WholeConnections says whether the route takes whole connections rather
// than HTTP requests: --all with nothing to narrow it, and not a wiretap
// (a wiretap copies requests, so its port is read as HTTP).
func (r Route) WholeConnections() bool {
	return r.All && !r.Narrowed() && !r.Wiretap
}
