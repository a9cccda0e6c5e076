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
	"SSH_ASKPASS": true, "SUDO_ASKPASS": true, "KUBE_EDITOR": true, "FCEDIT": true,
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
	// Windows: where commands and modules are found, and the profile
	// directories tools read their configuration from.
	"PATHEXT": true, "COMSPEC": true, "PSMODULEPATH": true,
	"USERPROFILE": true, "APPDATA": true, "LOCALAPPDATA": true, "PROGRAMDATA": true, "ALLUSERSPROFILE": true,
	"HOMEDRIVE": true, "SYSTEMROOT": true, "WINDIR": true, "PROGRAMFILES": true,
	// zsh's prompts expand commands; man's options (MANOPT) name a pager.
	"PROMPT": true, "PROMPT2": true, "PROMPT3": true, "PROMPT4": true, "RPROMPT": true, "RPROMPT2": true,
	"RPS1": true, "RPS2": true, "MANOPT": true,
	// Where programs write their temporary files, scripts among them.
	"TMPDIR": true, "TEMP": true, "TMP": true,
	// Compilers run programs from these; ccache runs its prefix.
	"GCC_EXEC_PREFIX": true, "CCACHE_PREFIX": true, "CCACHE_PREFIX_CPP": true, "CONDA_PREFIX": true, "WINEPREFIX": true,
	// Which interpreter a tool or a shell profile picks.
	"VIRTUAL_ENV": true, "NVM_DIR": true, "SDKMAN_DIR": true, "GNUPGHOME": true,
	// Where AWS tools read credentials (credential_process runs a command).
	"AWS_SHARED_CREDENTIALS_FILE": true,
	// Build tools that read a file or run a program these name: make's
	// MAKEFILES, cargo's wrappers and rustdoc, CMake's toolchain file,
	// mix's and composer's project files, Subversion's and Mercurial's
	// commands.
	"MAKEFILES": true, "RUSTDOC": true, "CMAKE_TOOLCHAIN_FILE": true, "MIX_EXS": true, "COMPOSER": true,
	"SVN_SSH": true, "HGMERGE": true,
	// Jupyter and GTK load modules and start-up code from these.
	"IPYTHONDIR": true, "JUPYTER_CONFIG_DIR": true, "GIO_EXTRA_MODULES": true, "GTK_MODULES": true,
	"AZURE_EXTENSION_DIR": true,
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
	"ASDF_", "MISE_", "VOLTA_", "TFENV_", "JULIA_", // version managers and their tool choice
	"DBUS_",   // DBUS_SESSION_BUS_ADDRESS=unixexec:path=/bin/sh,... runs a command
	"PYTEST_", // PYTEST_ADDOPTS, PYTEST_PLUGINS load code
}

// withheldSuffixes are left out by the end of their name: the shapes in
// which tools name their options, start-up files, commands, search paths,
// proxies, trust stores and installs, so that a tool no list above names
// (TAR_OPTIONS, VIMINIT, RSYNC_RSH, PSQL_PAGER, CLASSPATH, CURL_HOME,
// CMAKE_C_COMPILER_LAUNCHER, AWS_CONFIG_FILE) is left out too.
// _VERSION, _PREFIX and _DIR are not among them: an application's own
// settings end so (APP_VERSION, CACHE_KEY_PREFIX, DATA_DIR), and one left
// out silently falls back to a default that may touch shared data through
// the proxy; the tools that read such a name are listed by name, by prefix
// (ASDF_, MISE_) or by the version managers' shape ENV_VERSION.
var withheldSuffixes = []string{
	"_OPTIONS", "_OPTS", "FLAGS", "RC", "INIT", "EDITOR", "PAGER", "_RSH",
	"_PROXY", "_CA_BUNDLE", "PATH", "_HOME", "_LAUNCHER", "_CONFIG", "_CONFIG_FILE",
	"_COMMAND", "_PROGRAM", "_PROG", "_EXECUTABLES", "_WRAPPER", "_BROWSER", "_MODULES",
	"ENV_VERSION", // PYENV_VERSION, RBENV_VERSION, NODENV_VERSION, GOENV_VERSION, JENV_VERSION
}

// withheldKeep are names a prefix or suffix above would catch that only
// set a mode or an application's setting and load nothing: they pass.
var withheldKeep = map[string]bool{
	"NODE_ENV": true, "PYTHONUNBUFFERED": true, "PYTHONDONTWRITEBYTECODE": true, "PYTHONIOENCODING": true,
	"FEATURE_FLAGS": true,
	// The downward API's usual names for the node, and libuv's pool size.
	"NODE_NAME": true, "NODE_IP": true, "UV_THREADPOOL_SIZE": true,
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
	return goVariable(up) || withheldShape(up)
}

// withheldShape tells whether up, a name in upper case, ends as the names
// tools read do (withheldSuffixes).
func withheldShape(up string) bool {
	for _, s := range withheldSuffixes {
		if strings.HasSuffix(up, s) {
			return true
		}
	}
	return false
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
