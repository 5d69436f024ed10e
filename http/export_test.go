package http

// HoldHashSlots takes n argon2 slots until release is called (tests).
func (s *Server) HoldHashSlots(n int) (release func()) {
	for range n {
		s.hashing <- struct{}{}
	}
	return func() {
		for range n {
			<-s.hashing
		}
	}
}
