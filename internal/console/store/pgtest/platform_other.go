//go:build !linux

package pgtest

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
)

func platformSupported() error {
	return fmt.Errorf("%w: pgtest supports linux only (GOOS=%s)", ErrUnavailable, runtime.GOOS)
}

type runAs struct {
	name     string
	uid, gid int
}

func lookupRunAs() (*runAs, error)           { return nil, nil }
func prepareCmd(cmd *exec.Cmd, owner *runAs) {}
func signalQuit(p *os.Process) error         { return p.Kill() }
func removeStaleDirs()                       {}
func fastTmpRoot() string                    { return "" }
