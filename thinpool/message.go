package thinpool

import (
	"github.com/pkg/errors"
)

// confirmKept reads the pool's status right after it accepted message
// msg (DM_TABLE_STATUS with DM_NOFLUSH_FLAG: no metadata commit) and
// returns an error matching ErrPoolNotKept (and ErrPoolReadOnly) when the
// pool is no longer writable: dm-thin commits its metadata after a
// message but ignores the commit's result, so a message can return success
// while its commit failed and the pool went read-only or failed. Only the
// status says whether the message was kept.
func (p *Pool) confirmKept(msg string) error {
	st, err := p.rawStatus()
	if err != nil {
		return errors.Wrapf(err, "confirm that thin pool %s kept %q", p.cfg.PoolName, msg)
	}
	if !st.Failed && st.Mode != "ro" && !st.NeedsCheck {
		return nil
	}
	var s Status
	s.PoolName = p.cfg.PoolName
	fillStatus(&s, st, p.cfg.BlockSize, -1, -1)
	h := healthOf(s, p.hostShortfall())
	return &HealthError{Problems: h.Problems, NotKept: msg}
}
