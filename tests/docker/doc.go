// Package docker holds the real-Docker scenario: in the VM rig with
// run.sh --docker, Debian's dockerd 20.10.24 makes devicemapper stores
// (ext4 and xfs, one stopped cleanly, one killed in the middle of a
// docker cp) from image archives the test builds, and package dockerdm
// must read back exactly what docker images and docker ps -a listed.
package docker
