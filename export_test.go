package stream

// SetSyncFault makes the fsyncs of p's group commit return what fault
// returns (nil fault: real fsyncs again), to test the sticky error.
func SetSyncFault(p *Partition, fault func() error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.syncFault = fault
}

// SetAppendFault makes every AppendBatch on p that writes a batch return
// what fault returns once the batch is in the log (nil fault: no fault):
// a lost acknowledgement. fault may block, to slow the partition down.
func SetAppendFault(p *Partition, fault func() error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.appendFault = fault
}

// ProducerBuffered returns the buffer room p's undelivered records hold.
func ProducerBuffered(p *Producer) int64 { return p.buffered.Load() }
