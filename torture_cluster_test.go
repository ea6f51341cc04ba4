package stream_test

import "testing"

func tortureCluster(t *testing.T, seed uint64, long bool) (int, tortureResult) {
	return 0, tortureResult{}
}
