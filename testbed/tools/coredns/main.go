// Command coredns is the test bed node's cluster DNS: CoreDNS (pinned in go.mod) with only the plugins the
// test bed's Corefile uses compiled in, instead of upstream's full set (whose cloud DNS plugins pull in three
// cloud SDKs). Which plugins a Corefile may name, and in which order they run, is CoreDNS's own list
// (core/dnsserver); a plugin not registered here is refused when the Corefile is loaded.
package main

import (
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"

	_ "github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"
)

func main() {
	coremain.Run()
}
