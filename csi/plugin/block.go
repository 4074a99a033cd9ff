package plugin

import (
	"bytes"
	"context"
	"io"
	"os"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/thinpool"
)

// zeroCheck is how much of a discarded device is read back to prove that
// the discard unmapped it (the base filesystem's superblocks start there).
const zeroCheck = 1 << 20

// zeroDevice discards the whole of device id and reads its first MiB
// back as zeros, then deactivates it.
func zeroDevice(ctx context.Context, pool *thinpool.Pool, id string) (err error) {
	dev, err := pool.Activate(ctx, id)
	if err != nil {
		return grpcError(err, "activate new block volume %s", id)
	}
	defer func() {
		if derr := pool.Deactivate(context.WithoutCancel(ctx), id); derr != nil && err == nil {
			err = grpcError(derr, "deactivate new block volume %s", id)
		}
	}()
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return status.Errorf(codes.Internal, "open %s: %v", dev, err)
	}
	defer f.Close()
	if err := fs.Discard(ctx, f, 0, 0); err != nil {
		return grpcError(err, "discard new block volume %s", id)
	}
	buf := make([]byte, zeroCheck)
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF {
		return status.Errorf(codes.Internal, "read back %s: %v", dev, err)
	}
	if !bytes.Equal(buf[:n], make([]byte, n)) {
		return status.Errorf(codes.FailedPrecondition, "new block volume %s still shows the base device's bytes after a discard: "+
			"the thin pool ignores discards, and a block volume would hold them", id)
	}
	return nil
}
