package stream

// SetSyncFault makes the fsyncs of p's group commit return what fault
// returns (nil fault: real fsyncs again), to test the sticky error.
func SetSyncFault(p *Partition, fault func() error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.syncFault = fault
}
