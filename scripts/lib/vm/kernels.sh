# Fetching Debian kernel packages for scripts/vmtest.sh (sourced).
#
# apt runs with a private configuration (own sources list, lists, state and
# archive cache under $vm_cache/apt), so the machine's own apt state is never
# touched; the mirror is the one this machine's apt already uses.

# Debian suite that ships each kernel series the matrix boots.
declare -A vm_suite=([5.10]=bullseye [6.1]=bookworm [6.12]=bookworm-backports)

# vm_mirror: the first Debian mirror URI in the system's sources
# (deb822 .sources or one-line .list), so the repository names no host.
vm_mirror() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -r $f ]] || continue
    uri=$(awk 'tolower($1)=="uris:" { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }' "$f")
    [[ -n $uri ]] && { echo "${uri%/}"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -r $f ]] || continue
    uri=$(awk '$1=="deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\/.*\/debian\/?$/) { print $i; exit } }' "$f")
    [[ -n $uri ]] && { echo "${uri%/}"; return; }
  done
  return 1
}

# vm_apt_setup: writes the private apt config and refreshes its lists once a
# day. Older suites' Release files may be signed by keys this machine's
# keyring lacks, or carry a Valid-Until that has passed on a frozen mirror:
# we accept them here (and only in this private config) because the packages
# are test fixtures booted in a throw-away guest, never installed on the host.
vm_apt_setup() {
  local d=$vm_cache/apt mirror
  mirror=$(vm_mirror) || { echo "vmtest: no Debian mirror found in /etc/apt/sources*" >&2; return 1; }
  mkdir -p "$d/lists/partial" "$d/cache/archives/partial" "$d/state"
  touch "$d/state/status"
  {
    echo "deb [trusted=yes] $mirror bullseye main"
    echo "deb [trusted=yes] $mirror bookworm main"
    echo "deb [trusted=yes] $mirror bookworm-backports main"
  } >"$d/sources.list.new"
  cat >"$d/apt.conf" <<CONF
Dir::Etc::SourceList "$d/sources.list";
Dir::Etc::SourceParts "/nonexistent";
Dir::Etc::Preferences "/nonexistent";
Dir::Etc::PreferencesParts "/nonexistent";
Dir::State "$d/state";
Dir::State::Lists "$d/lists";
Dir::State::status "$d/state/status";
Dir::Cache "$d/cache";
Acquire::Check-Valid-Until "false";
Acquire::Languages "none";
APT::Architecture "amd64";
APT::Sandbox::User "root";
CONF
  export APT_CONFIG=$d/apt.conf
  local fresh=
  if cmp -s "$d/sources.list.new" "$d/sources.list"; then
    [[ -n $(find "$d/lists" -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1) ]] && fresh=1
  fi
  mv "$d/sources.list.new" "$d/sources.list"
  if [[ -z $fresh ]]; then
    apt-get update -qq >"$d/update.log" 2>&1 || { echo "vmtest: apt-get update failed (see $d/update.log)" >&2; return 1; }
  fi
}

# vm_newest PATTERN: the newest package whose name matches the extended regex.
vm_newest() {
  apt-cache pkgnames 2>/dev/null | grep -E "^$1\$" | sort -V | tail -1
}

# vm_fetch SERIES: downloads (once) and unpacks the newest
# linux-image-SERIES*-amd64-unsigned of its suite. Sets vm_kdir (the unpacked
# tree), vm_kver (its uname -r) and vm_vmlinuz.
vm_fetch() {
  local series=$1 pkg deb
  local re="linux-image-${series//./\\.}[.][0-9]+([-+][0-9a-z]+)?-amd64-unsigned"
  pkg=$(vm_newest "$re")
  [[ -n $pkg ]] || { echo "vmtest: no package matching $re in ${vm_suite[$series]}" >&2; return 1; }
  vm_kdir=$vm_cache/kernels/$pkg
  if [[ ! -e $vm_kdir/.unpacked ]]; then
    mkdir -p "$vm_cache/debs"
    deb=$(cd "$vm_cache/debs" && ls "${pkg}"_*.deb 2>/dev/null | head -1)
    if [[ -z $deb ]]; then
      (cd "$vm_cache/debs" && apt-get download -qq "$pkg" >/dev/null 2>"$vm_cache/debs/$pkg.log") ||
        { echo "vmtest: apt-get download $pkg failed (see $vm_cache/debs/$pkg.log)" >&2; return 1; }
      deb=$(cd "$vm_cache/debs" && ls "${pkg}"_*.deb | head -1)
    fi
    rm -rf "$vm_kdir"; mkdir -p "$vm_kdir"
    dpkg-deb -x "$vm_cache/debs/$deb" "$vm_kdir"
    local v; v=$(basename "$(ls -d "$vm_kdir"/lib/modules/*/ | head -1)")
    depmod -b "$vm_kdir" "$v"
    touch "$vm_kdir/.unpacked"
  fi
  vm_kver=$(basename "$(ls -d "$vm_kdir"/lib/modules/*/ | head -1)")
  vm_vmlinuz=$vm_kdir/boot/vmlinuz-$vm_kver
  [[ -r $vm_vmlinuz ]] || { echo "vmtest: $pkg has no $vm_vmlinuz" >&2; return 1; }
}

# vm_busybox: a static busybox from Debian's busybox-static of this machine's
# release (it runs on every kernel the matrix boots). Sets vm_busybox.
vm_busybox() {
  vm_busybox=$vm_cache/busybox/bin/busybox
  [[ -x $vm_busybox ]] && return
  if [[ -x /bin/busybox ]] && file -L /bin/busybox 2>/dev/null | grep -q 'statically linked'; then
    mkdir -p "$vm_cache/busybox/bin"; cp /bin/busybox "$vm_busybox"; return
  fi
  local deb
  mkdir -p "$vm_cache/debs"
  (cd "$vm_cache/debs" && apt-get download -qq busybox-static >/dev/null 2>"$vm_cache/debs/busybox.log") ||
    { echo "vmtest: apt-get download busybox-static failed" >&2; return 1; }
  deb=$(cd "$vm_cache/debs" && ls -t busybox-static_*.deb | head -1)
  rm -rf "$vm_cache/busybox"; mkdir -p "$vm_cache/busybox"
  dpkg-deb -x "$vm_cache/debs/$deb" "$vm_cache/busybox"
  [[ -x $vm_busybox ]]
}

# vm_modules_for KDIR KVER NAME...: module files (relative to the modules
# directory) to insmod, dependencies first, each once; modules built into the
# kernel are left out.
vm_modules_for() {
  local kdir=$1 kver=$2; shift 2
  local mdir=$kdir/lib/modules/$kver
  declare -A seen=()
  local out=()
  _vm_mod() {
    local path=$1 dep
    [[ -n ${seen[$path]:-} ]] && return
    seen[$path]=1
    local deps; deps=$(grep -m1 "^$path:" "$mdir/modules.dep" | cut -d: -f2)
    local rev=() d
    for d in $deps; do rev=("$d" "${rev[@]}"); done
    for d in "${rev[@]}"; do _vm_mod "$d"; done
    out+=("$path")
  }
  local name path
  for name in "$@"; do
    path=$(grep -m1 -E "(^|/)${name}\.ko(\.[a-z]+)?:" "$mdir/modules.dep" | cut -d: -f1)
    if [[ -z $path ]]; then
      grep -qE "(^|/)${name}\.ko" "$mdir/modules.builtin" 2>/dev/null && continue
      echo "vmtest: module $name neither in modules.dep nor built in ($kver)" >&2; return 1
    fi
    _vm_mod "$path"
  done
  printf '%s\n' "${out[@]}"
}
