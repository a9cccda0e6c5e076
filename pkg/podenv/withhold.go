package podenv

import "strings"

// Which of a pod's variables stay in the cluster. The environment goes to a
// process on the developer's machine (-- CMD) and to files a developer may
// source (--env-file, --env-json). Anyone who can edit the workload's
// template or a ConfigMap it reads chooses these values, so a variable that
// makes a program load code, run a command, or change which tools run or
// which configuration they read is left out: NODE_OPTIONS=--require=…,
// LD_PRELOAD, GIT_CONFIG_COUNT/KEY_0=core.fsmonitor/VALUE_0, PATH, and
// their kind. The developer takes one in by name (--env-allow NAME).

// withheldNames are left out by their exact name.
var withheldNames = map[string]bool{
	// Where programs and their configuration are found.
	"PATH": true, "HOME": true, "SHELL": true, "KUBECONFIG": true,
	// Shells run these at start or at each prompt.
	"ENV": true, "BASH_ENV": true, "ZDOTDIR": true, "PROMPT_COMMAND": true, "FPATH": true,
	"PS0": true, "PS1": true, "PS2": true, "PS3": true, "PS4": true,
	"IFS": true, "CDPATH": true, "SHELLOPTS": true, "BASHOPTS": true, "GLOBIGNORE": true,
	// Commands tools run for the user.
	"EDITOR": true, "VISUAL": true, "PAGER": true, "MANPAGER": true, "BROWSER": true,
	"SSH_ASKPASS": true, "SUDO_ASKPASS": true, "KUBE_EDITOR": true,
	// The dynamic loader and the C library load code or data from these.
	"GCONV_PATH": true, "GLIBC_TUNABLES": true, "LOCPATH": true, "NLSPATH": true,
	"HOSTALIASES": true, "LOCALDOMAIN": true, "RES_OPTIONS": true, "RESOLV_HOST_CONF": true,
	// Runtime options that load agents, modules or run commands.
	"JAVA_TOOL_OPTIONS": true, "_JAVA_OPTIONS": true, "JDK_JAVA_OPTIONS": true,
	"MAVEN_OPTS": true, "MAVEN_ARGS": true, "GRADLE_OPTS": true, "SBT_OPTS": true, "ANT_OPTS": true,
	"CATALINA_OPTS": true, "JRUBY_OPTS": true, "PHPRC": true, "PHP_INI_SCAN_DIR": true,
	"R_PROFILE": true, "R_PROFILE_USER": true, "R_ENVIRON": true, "R_ENVIRON_USER": true, "R_LIBS": true, "R_LIBS_USER": true,
	"RUSTFLAGS": true, "RUSTDOCFLAGS": true, "RUSTC": true, "RUSTC_WRAPPER": true,
	// Compilers and build tools pick the programs they run from these.
	"CC": true, "CXX": true, "CPP": true, "LD": true, "AR": true, "AS": true,
	"CFLAGS": true, "CXXFLAGS": true, "CPPFLAGS": true, "LDFLAGS": true, "MAKEFLAGS": true, "MFLAGS": true, "MAKE": true,
	"TERMINFO": true, "TERMINFO_DIRS": true,
	// Windows: where commands and modules are found.
	"PATHEXT": true, "COMSPEC": true, "PSMODULEPATH": true,
}

// withheldPrefixes are left out by the start of their name (compared in
// upper case: npm reads npm_config_* in either case, Windows ignores case).
var withheldPrefixes = []string{
	"LD_", "DYLD_", // the dynamic loaders: LD_PRELOAD, LD_LIBRARY_PATH, DYLD_INSERT_LIBRARIES
	"BASH_FUNC_", // bash's exported functions
	"GIT_",       // GIT_CONFIG_*, GIT_SSH_COMMAND, GIT_EXEC_PATH, GIT_ASKPASS
	"NODE_", "NPM_CONFIG_", "YARN_", "COREPACK_", "BUN_", "DENO_",
	"PYTHON", "PIP_", "UV_", "POETRY_", "PIPX_",
	"PERL5", "PERLLIB", "PERL_",
	"RUBY", "GEM_", "BUNDLE_",
	"JAVA_", "JDK_", "GRADLE_", "MAVEN_",
	"DOTNET_", "CORECLR_", "COMPLUS_",
	"ERL_", "ELIXIR_", "LUA_", "CARGO_", "RUSTUP_", "CGO_", "PKG_CONFIG",
	"OPENSSL_", "SSL_CERT_", // OPENSSL_CONF loads engines; the trust store
	"LESS", // LESSOPEN runs a command
	"XDG_", // where every tool reads its configuration
	"DOCKER_", "KUBECTL_", "HELM_",
}

// withheldKeep are names a prefix above would catch that only set a mode
// and load nothing: they pass.
var withheldKeep = map[string]bool{
	"NODE_ENV": true, "PYTHONUNBUFFERED": true, "PYTHONDONTWRITEBYTECODE": true, "PYTHONIOENCODING": true,
}

// Withheld tells whether a variable of the pod stays out of the developer's
// machine unless the developer allows it by name.
func Withheld(name string) bool {
	up := strings.ToUpper(name)
	if withheldNames[up] {
		return true
	}
	if withheldKeep[up] {
		return false
	}
	for _, p := range withheldPrefixes {
		if strings.HasPrefix(up, p) {
			return true
		}
	}
	return goVariable(up)
}

// goVariable tells whether name is one of the Go tool's and runtime's:
// GO then letters or digits without an underscore (GOFLAGS, GOTOOLCHAIN,
// GOPROXY, GO111MODULE, GODEBUG), while GOOGLE_APPLICATION_CREDENTIALS and
// the like, which name an application's setting, pass.
func goVariable(up string) bool {
	rest, ok := strings.CutPrefix(up, "GO")
	if !ok || rest == "" {
		return false
	}
	for _, c := range rest {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// Withhold splits vars into those the developer's machine gets and the
// names left out; allow names variables taken in anyway (exact names, as
// the pod spells them). Names are listed once each, in the pod's order.
func Withhold(vars []Var, allow []string) (kept []Var, left []string) {
	allowed := map[string]bool{}
	for _, a := range allow {
		allowed[a] = true
	}
	for _, v := range vars {
		if Withheld(v.Name) && !allowed[v.Name] {
			left = append(left, v.Name)
			continue
		}
		kept = append(kept, v)
	}
	return kept, left
}
