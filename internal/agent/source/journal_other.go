//go:build !linux

package source

import "os/exec"

func setChildAttrs(*exec.Cmd) {}
