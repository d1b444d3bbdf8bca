package itec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// ErrLocked reports that another Run holds the checkpoint directory.
var ErrLocked = errors.New("itec: checkpoint directory is in use by another run")

// lockName is the lock file Run holds in the checkpoint directory.
const lockName = "lock"

// dirLock is an exclusive lock on a checkpoint directory: an advisory lock
// (flock on Unix, LockFileEx on Windows) on dir/lock, held for the whole of
// Run. The operating system drops it when the process exits, however it
// exits, so a lock is never stale after a crash. The file holds the holder's
// process id, for the error a second runner gets; its content is not the
// lock.
type dirLock struct{ f *os.File }

func lockDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("itec: locking %s: %w", dir, err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		if errors.Is(err, ErrLocked) {
			holder := "another process"
			if b, rerr := os.ReadFile(path); rerr == nil && len(b) > 0 {
				if pid, perr := strconv.Atoi(string(b)); perr == nil {
					holder = fmt.Sprintf("process %d", pid)
				}
			}
			return nil, fmt.Errorf("%w: %s holds %s", ErrLocked, holder, path)
		}
		return nil, fmt.Errorf("itec: locking %s: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())), 0)
	}
	return &dirLock{f}, nil
}

func (l *dirLock) unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the descriptor releases the lock
	l.f = nil
	return err
}
