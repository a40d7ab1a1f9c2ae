# Sourced by the setup scripts: install what is missing, and nothing else.
#   apt_install_missing NAME PKG...   Debian packages not installed yet (apt-get, as root or with sudo)
#   pip_install_missing NAME MOD...   Python modules the default python3 cannot import (pip; a
#                                     module's pip name is its name with - for _)
# NAME prefixes the lines printed.

apt_install_missing() {
  local name=$1 p missing=()
  shift
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "$name: installing ${missing[*]}"
    local SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "$name: Debian packages present"
  fi
}

pip_install_missing() {
  local name=$1 p missing=()
  shift
  for p in "$@"; do
    python3 -c "import $p" 2>/dev/null || missing+=("${p//_/-}")
  done
  if ((${#missing[@]})); then
    echo "$name: pip installing ${missing[*]}"
    python3 -m pip install --quiet "${missing[@]}"
  else
    echo "$name: python packages present"
  fi
}
