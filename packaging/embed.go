// Package packaging holds the files Palisade installs on servers (systemd units) and makes them
// available to the console, which hands the agent unit to its install script.
package packaging

import _ "embed"

// AgentUnit is the systemd unit of the agent.
//
//go:embed palisade-agent.service
var AgentUnit string
