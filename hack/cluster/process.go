package cluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Process is a child process the harness started; it is stopped by its PID.
type Process struct {
	Name    string
	LogFile string
	bin     string
	args    []string
	env     []string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
}

// StartProcess runs bin with args, logging to logDir/name.log. The child gets
// its own process group so signals to the harness do not reach it twice.
func StartProcess(logDir, name, bin string, args []string, env []string) (*Process, error) {
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	p := &Process{Name: name, LogFile: filepath.Join(logDir, name+".log"), bin: bin, args: args, env: env}
	return p, p.start()
}

func (p *Process) start() error {
	logFile, err := os.OpenFile(p.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), p.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("starting %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(done)
	}()
	return nil
}

// Restart stops the process (SIGKILL with kill, else SIGTERM with a grace
// period) and starts it again with the same arguments, appending to its log.
func (p *Process) Restart(kill bool) error {
	if kill {
		if !p.Exited() {
			_ = syscall.Kill(-p.PID(), syscall.SIGKILL)
			<-p.done
		}
	} else {
		p.Stop(30 * time.Second)
	}
	return p.start()
}

// PID is the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM, waits up to grace, then SIGKILLs the process group.
func (p *Process) Stop(grace time.Duration) {
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.PID(), syscall.SIGKILL)
		<-p.done
	}
}

// Tail returns the last lines of the process log, for error messages.
func (p *Process) Tail(lines int) string {
	data, err := os.ReadFile(p.LogFile)
	if err != nil {
		return ""
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// RepoRoot is the root of this repository (the directory holding go.mod).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// KubeBinaries builds (once, cached outside the work tree) and returns the
// directory holding kube-apiserver, kube-controller-manager, kube-scheduler,
// kubelet and kube-proxy.
func KubeBinaries() (string, error) {
	cmd := exec.Command("bash", filepath.Join(RepoRoot(), "hack", "build-kube.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("building Kubernetes binaries: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// BuildTool builds (once, cached outside the work tree) a server the local
// cluster runs from its module in hack/tools (coredns, minio) and returns the
// binary's path.
func BuildTool(name string) (string, error) {
	cmd := exec.Command("bash", filepath.Join(RepoRoot(), "hack", "build-tool.sh"), name)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("building %s: %w", name, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// BuildOperator builds backup-apiserver and backup-mover from this checkout into dir.
func BuildOperator(dir string) error {
	cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/...")
	cmd.Dir = RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the operator: %w\n%s", err, out)
	}
	return nil
}

// waitFor polls check until it returns true, an error, or the timeout passes.
func waitFor(timeout time.Duration, what string, check func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := check()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			if last != nil {
				return fmt.Errorf("timed out after %s waiting for %s: %w", timeout, what, last)
			}
			return errors.New("timed out after " + timeout.String() + " waiting for " + what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
