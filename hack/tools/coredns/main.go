// Command coredns is CoreDNS, built by hack/build-tool.sh for the local
// cluster's DNS (hack/cluster/dns.go) with only the plugins its Corefile uses
// (and log, to debug it).
// CoreDNS's own build links every plugin, among them cloud providers' SDKs;
// a main of our own with fewer plugins is CoreDNS's documented way to choose
// them, and it builds in a fraction of the time on a cold cache.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/template"
)

// directives are the plugins above in the order of CoreDNS's plugin.cfg: a
// request passes through them in this order, whatever the Corefile's order.
var directives = []string{"reload", "ready", "health", "errors", "log", "loadbalance", "cache", "template", "kubernetes"}

func main() {
	dnsserver.Directives = directives
	coremain.Run()
}
