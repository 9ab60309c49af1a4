#!/usr/bin/env bash
# Provisions the Vagrant VM: the project's own dependency script, then a build, exactly as
# on a fresh Debian 12 machine. Usage (Vagrant runs it as root): provision.sh SLUICE_DIR
set -euo pipefail
dir=${1:-/opt/sluice}
cd "$dir"
bash scripts/install-deps.sh
BUILD_DIR=$dir/build bash scripts/build.sh
echo "provisioned: kernel $(uname -r), sluice built in $dir/build"
echo "next: vagrant ssh -c 'sudo $dir/vagrant/run-in-vm.sh'"
