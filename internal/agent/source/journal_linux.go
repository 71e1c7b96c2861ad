//go:build linux

package source

import (
	"os/exec"
	"syscall"
)

// setChildAttrs makes journalctl die with the agent: a SIGKILLed agent must not leave it
// running.
func setChildAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
