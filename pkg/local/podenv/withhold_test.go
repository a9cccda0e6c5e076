package podenv

import (
	"context"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestWithheld(t *testing.T) {
	for _, name := range []string{
		"NODE_OPTIONS", "NODE_PATH", "NODE_EXTRA_CA_CERTS", "NODE_TLS_REJECT_UNAUTHORIZED",
		"JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "JAVA_OPTS", "MAVEN_OPTS",
		"LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "DYLD_INSERT_LIBRARIES", "DYLD_LIBRARY_PATH",
		"PATH", "HOME", "SHELL", "KUBECONFIG", "BASH_ENV", "ENV", "PROMPT_COMMAND", "PS4", "ZDOTDIR",
		"BASH_FUNC_ls%%",
		"PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PERL5OPT", "PERL5LIB", "PERLLIB", "RUBYOPT", "RUBYLIB",
		"GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0", "GIT_CONFIG_VALUE_0", "GIT_SSH_COMMAND", "GIT_EXEC_PATH",
		"GOFLAGS", "GOTOOLCHAIN", "GOPROXY", "GO111MODULE", "GODEBUG",
		"npm_config_script_shell", "NPM_CONFIG_REGISTRY", "PIP_INDEX_URL",
		"DOTNET_STARTUP_HOOKS", "CORECLR_PROFILER_PATH", "OPENSSL_CONF", "LESSOPEN", "GCONV_PATH",
		"EDITOR", "RUSTC_WRAPPER", "CC", "XDG_CONFIG_HOME", "DOCKER_HOST", "KUBECTL_EXTERNAL_DIFF", "LUA_INIT",
		"path",
	} {
		if !Withheld(name) {
			t.Errorf("Withheld(%q) = false: a pod's value would reach the developer's machine", name)
		}
	}
	for _, name := range []string{
		"DATABASE_URL", "PORT", "NODE_ENV", "PYTHONUNBUFFERED", "GOOGLE_APPLICATION_CREDENTIALS",
		"GOOGLE_CLOUD_PROJECT", "GO", "AWS_REGION", "API_KEY", "LANG", "TZ", "HOSTNAME",
		"WEB_SERVICE_HOST", "KUBERNETES_PORT_443_TCP", "LOG_LEVEL", "GOLANG_VERSION_X",
	} {
		if Withheld(name) {
			t.Errorf("Withheld(%q) = true: an application's own setting is left out", name)
		}
	}
}

// Each name below made a program on the developer's machine run a command,
// load code or configuration from a path (which --mount can fill from a
// ConfigMap), pick another tool, trust another certificate authority, or
// send its traffic or temporary files elsewhere. Most are caught by shape,
// not by a list.
func TestWithheldByShape(t *testing.T) {
	for _, name := range []string{
		// Commands, directly.
		"TAR_OPTIONS", "VIMINIT", "EXINIT", "RSYNC_RSH", "CVS_RSH", "SUDO_EDITOR", "FCEDIT", "SVN_EDITOR",
		"HGEDITOR", "PSQL_PAGER", "PSQL_EDITOR", "SYSTEMD_PAGER", "SYSTEMD_EDITOR", "MANOPT", "PROMPT", "RPROMPT",
		// Code or configuration from a path.
		"CLASSPATH", "GCC_EXEC_PREFIX", "COMPILER_PATH", "CCACHE_PREFIX", "CMAKE_C_COMPILER_LAUNCHER",
		"CMAKE_CXX_COMPILER_LAUNCHER", "AWS_CONFIG_FILE", "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES", "CURL_HOME",
		"WGETRC", "HGRCPATH", "PSQLRC", "INPUTRC", "TCLLIBPATH", "JULIA_LOAD_PATH",
		// Which tool runs.
		"PYENV_VERSION", "RBENV_VERSION", "NODENV_VERSION", "VOLTA_HOME", "ASDF_DATA_DIR", "ASDF_NODEJS_VERSION",
		"MISE_DATA_DIR", "MISE_NODE_VERSION",
		// Commands and modules the second look found: D-Bus's unixexec:
		// addresses, wrappers, build files, test runners' options.
		"DBUS_SESSION_BUS_ADDRESS", "DBUS_SYSTEM_BUS_ADDRESS", "RSYNC_CONNECT_PROG", "SVN_SSH", "HGMERGE",
		"GH_BROWSER", "MAKEFILES", "RUSTC_WORKSPACE_WRAPPER", "RUSTDOC", "CMAKE_TOOLCHAIN_FILE", "MIX_EXS",
		"COMPOSER", "PYTEST_ADDOPTS", "PYTEST_PLUGINS", "IPYTHONDIR", "JUPYTER_CONFIG_DIR",
		"GIO_EXTRA_MODULES", "GTK_MODULES", "AZURE_EXTENSION_DIR",
		// Trust stores.
		"CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE",
		// Traffic and locations.
		"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy", "no_proxy",
		"TMPDIR", "TEMP", "TMP",
		"USERPROFILE", "APPDATA", "LOCALAPPDATA", "COMSPEC", "PATHEXT",
		"UserProfile", "AppData", "LocalAppData", "ComSpec", "PathExt", "Path", "Tmp",
		// Shapes beyond the list above.
		"APP_OPTIONS", "JAVA_OPTS", "CFLAGS", "GIT_EDITOR", "LUA_INIT", "SPARK_HOME", "GRADLE_USER_HOME",
		"GIT_SSH_COMMAND", "GNUPGHOME", "AWS_SHARED_CREDENTIALS_FILE",
	} {
		if !Withheld(name) {
			t.Errorf("Withheld(%q) = false: a pod's value would reach the developer's machine", name)
		}
	}
}

// A realistic application's environment reaches -- CMD untouched: the
// shapes do not take its own settings.
func TestWithheldLeavesAnAppAlone(t *testing.T) {
	for _, name := range []string{
		"APP_VERSION", "DB_HOST", "DB_PORT", "DB_USER", "DB_PASSWORD", "DATABASE_URL", "REDIS_URL",
		"SPRING_PROFILES_ACTIVE", "NODE_ENV", "LOG_LEVEL", "DATA_DIR", "UPLOAD_DIR", "CACHE_KEY_PREFIX",
		"FEATURE_FLAGS", "SENTRY_DSN", "AWS_REGION", "JWT_SECRET", "KAFKA_BROKERS", "OTEL_SERVICE_NAME",
		"RAILS_ENV", "PORT", "TZ", "NODE_NAME", "NODE_IP", "UV_THREADPOOL_SIZE",
	} {
		if Withheld(name) {
			t.Errorf("Withheld(%q) = true: an application's own setting is left out", name)
		}
	}
}

func TestWithholdAllowTakesOneIn(t *testing.T) {
	vars := []Var{
		{Name: "NODE_OPTIONS", Value: "--require=/attacker/x.js"},
		{Name: "DATABASE_URL", Value: "postgres://db"},
		{Name: "GIT_CONFIG_COUNT", Value: "1"},
		{Name: "JAVA_TOOL_OPTIONS", Value: "-Xmx1g"},
	}
	kept, left := Withhold(vars, []string{"JAVA_TOOL_OPTIONS"})
	if want := []string{"NODE_OPTIONS", "GIT_CONFIG_COUNT"}; !reflect.DeepEqual(left, want) {
		t.Errorf("left out %q, want %q", left, want)
	}
	if want := []Var{vars[1], vars[3]}; !reflect.DeepEqual(kept, want) {
		t.Errorf("kept %+v, want %+v", kept, want)
	}
}

// The attack: NODE_OPTIONS in the template and git's GIT_CONFIG_* from a
// ConfigMap (core.fsmonitor runs a command at the next git status) resolve
// as the kubelet gives them, and Withhold keeps them off the laptop.
func TestWithholdTemplateAndConfigMap(t *testing.T) {
	objs := &objects{cms: map[string]*corev1.ConfigMap{"settings": {
		ObjectMeta: metav1.ObjectMeta{Name: "settings"},
		Data: map[string]string{
			"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "core.fsmonitor", "GIT_CONFIG_VALUE_0": "touch owned",
			"LISTEN": ":8080",
		},
	}}}
	c := &corev1.Container{Name: "app",
		EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}},
		Env:     []corev1.EnvVar{{Name: "NODE_OPTIONS", Value: "--require /attacker/evil.js"}, {Name: "MODE", Value: "dev"}},
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, Spec: corev1.PodSpec{Containers: []corev1.Container{*c}}}
	vars, err := Resolve(context.Background(), Input{Pod: pod, Container: c, Objects: objs})
	if err != nil {
		t.Fatal(err)
	}
	kept, left := Withhold(vars, nil)
	if want := []string{"GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0", "GIT_CONFIG_VALUE_0", "NODE_OPTIONS"}; !reflect.DeepEqual(left, want) {
		t.Errorf("left out %q, want %q", left, want)
	}
	var names []string
	for _, v := range kept {
		names = append(names, v.Name)
	}
	if want := []string{"LISTEN", "MODE"}; !reflect.DeepEqual(names, want) {
		t.Errorf("kept %q, want %q", names, want)
	}
}
