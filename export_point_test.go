package stream

// Internals for the point-read tests (read_point_test.go).

// PointCachedForTest reports whether the batch a Read of offset starts
// from is in its segment's point cache (read_point.go).
func PointCachedForTest(p *Partition, offset int64) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	seg := p.floorLocked(offset)
	if seg == nil {
		return false
	}
	c, err := seg.pinLocked()
	if err != nil {
		return false
	}
	defer c.unpin(seg)
	pos, _, err := seg.lookupLocked(offset)
	return err == nil && seg.points.get(pos) != nil
}

// SetBatchCompressionForTest makes b compress its records when appended,
// as a producer's batches do.
func SetBatchCompressionForTest(b *Batch, c Compression) { b.compression = c }
