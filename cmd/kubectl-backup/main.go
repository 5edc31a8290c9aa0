// Command kubectl-backup is the kubectl plugin of backup.example.com: on the
// PATH as kubectl-backup, it runs as `kubectl backup`.
//
//	kubectl backup status [-A]
//	kubectl backup now POLICY [--wait]
//	kubectl backup restore BACKUP (--to PVC | --new-pvc SIZE) [--mode Mirror] [--path P]... [--yes]
//	kubectl backup ls BACKUP [PATH]
//	kubectl backup cp BACKUP:PATH LOCAL [--overwrite]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"example.com/backup-operator/pkg/apis/backup/v1alpha1"
	"example.com/backup-operator/pkg/generated/clientset/versioned"
)

// Exit codes: a Backup or RestoreJob that ended Failed is told apart from a
// request the plugin could not make and from one it stopped following.
const (
	exitOK = 0
	// exitFailed: the Backup or RestoreJob ended Failed.
	exitFailed = 1
	// exitError: bad arguments, a refusal by the API, a declined restore.
	exitError = 2
	// exitTimeout: --timeout passed or the plugin was interrupted before
	// the object finished; it goes on in the cluster.
	exitTimeout = 3
)

// codeError carries the exit code an error ends the plugin with.
type codeError struct {
	code int
	err  error
}

func (e *codeError) Error() string { return e.err.Error() }
func (e *codeError) Unwrap() error { return e.err }

func withCode(code int, format string, a ...any) error {
	return &codeError{code: code, err: fmt.Errorf(format, a...)}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the flags every command shares and what they resolve to.
type options struct {
	kubeconfig    string
	context       string
	namespace     string
	allNamespaces bool
	output        string
	timeout       time.Duration
	// interval is how often a followed object is read.
	interval time.Duration
	// retryFor is how long ls and cp keep trying a 503 of the files
	// subresource (its Retry-After between tries).
	retryFor time.Duration
	// rangeSize is the most cp asks for in one request (0: rangeSize).
	rangeSize int64

	in          io.Reader
	out, errOut io.Writer

	client versioned.Interface
	// http is the client's HTTP client (credentials, TLS): the files
	// subresource is read through it for its headers and streamed bodies.
	http *http.Client
	ns   string
	now  func() time.Time
}

// run is the plugin: args without the program name; the exit code.
func run(ctx context.Context, args []string, in io.Reader, out, errOut io.Writer) int {
	o := &options{in: in, out: out, errOut: errOut, now: time.Now}
	root := &cobra.Command{
		Use:           "backup",
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl backup"},
		Short:         "Status, on-demand backups, restores and the files of Backups of backup.example.com",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			switch o.output {
			case "", "json", "yaml":
			default:
				return withCode(exitError, "--output must be json or yaml, not %q", o.output)
			}
			return o.connect()
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetArgs(args)
	root.SetIn(in)
	root.SetOut(out)
	root.SetErr(errOut)
	f := root.PersistentFlags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	f.StringVar(&o.context, "context", "", "the kubeconfig context to use")
	f.StringVarP(&o.namespace, "namespace", "n", "", "the namespace (default: the context's)")
	f.StringVarP(&o.output, "output", "o", "", "json or yaml: print the objects instead of the text (progress goes to stderr)")
	f.DurationVar(&o.interval, "poll-interval", time.Second, "how often a followed object is read")
	_ = f.MarkHidden("poll-interval")

	root.AddCommand(o.statusCommand(), o.nowCommand(), o.restoreCommand(), o.lsCommand(), o.cpCommand())

	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(errOut, "error: "+err.Error())
	if ce, ok := errors.AsType[*codeError](err); ok {
		return ce.code
	}
	return exitError
}

// connect builds the client as kubectl would from --kubeconfig, --context
// and -n.
func (o *options) connect() error {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: o.context}
	overrides.Context.Namespace = o.namespace
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	ns, _, err := cc.Namespace()
	if err != nil {
		return err
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		return err
	}
	// The API's warnings (a Mirror restore, say) are shown as kubectl does.
	cfg.WarningHandler = rest.NewWarningWriter(o.errOut, rest.WarningWriterOptions{Deduplicate: true})
	cfg.UserAgent = "kubectl-backup"
	if o.http, err = rest.HTTPClientFor(cfg); err != nil {
		return err
	}
	o.client, err = versioned.NewForConfigAndClient(cfg, o.http)
	o.ns = ns
	return err
}

// display is where progress and text go: stdout, or stderr when -o prints
// objects on stdout.
func (o *options) display() io.Writer {
	if o.output != "" {
		return o.errOut
	}
	return o.out
}

// isTerminal reports whether w is a terminal (progress bars are drawn only there).
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// printObject writes obj as -o asks.
func (o *options) printObject(obj any) error {
	var data []byte
	var err error
	switch o.output {
	case "json":
		data, err = json.MarshalIndent(obj, "", "    ")
		data = append(data, '\n')
	case "yaml":
		data, err = yaml.Marshal(obj)
	}
	if err != nil {
		return err
	}
	_, err = o.out.Write(data)
	return err
}

// list wraps objects as kubectl prints several: a v1 List.
func list(items ...runtime.Object) map[string]any {
	return map[string]any{"apiVersion": "v1", "kind": "List", "items": items}
}

// withKind sets obj's apiVersion and kind, which a typed client leaves empty.
func withKind(obj runtime.Object, kind string) runtime.Object {
	obj.GetObjectKind().SetGroupVersionKind(v1alpha1.SchemeGroupVersion.WithKind(kind))
	return obj
}

// apiError is the API's refusal as the API worded it (403, 404, 409, 422).
func apiError(err error) error {
	if status, ok := err.(apierrors.APIStatus); ok || errors.As(err, &status) {
		return withCode(exitError, "%s", status.Status().Message)
	}
	return withCode(exitError, "%v", err)
}
