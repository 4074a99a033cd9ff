# lib.sh: shell functions shared by the guest's init (busybox sh) and the
# host test that checks them (summary_test.go). POSIX sh only.

# count_results LOG prints "PASSED FAILED SKIPPED": the top-level test results
# in a `go test -v` transcript (subtests are indented and not counted).
count_results() {
	_p=$(grep -c '^--- PASS: ' "$1" 2>/dev/null) || true
	_f=$(grep -c '^--- FAIL: ' "$1" 2>/dev/null) || true
	_s=$(grep -c '^--- SKIP: ' "$1" 2>/dev/null) || true
	echo "${_p:-0} ${_f:-0} ${_s:-0}"
}

# binary_failures LOG RC prints how many failures to add for one test binary
# that exited with RC: a binary that failed without any "--- FAIL" line (a
# panic outside a test, a -test.timeout, a build/flag error) counts as one.
binary_failures() {
	set -- "$1" "$2" "$(count_results "$1")"
	if [ "$2" -ne 0 ]; then
		case "$3" in
		*" 0 "*) echo 1; return ;;
		esac
	fi
	echo 0
}

# failed_tests LOG prints, on one line, which tests failed in a guest's
# console transcript: "binary:TestName" for each top-level "--- FAIL", and
# "binary (exit N)" for a binary that failed without one (a panic outside a
# test, a -test.timeout). It prints an empty line when nothing failed.
failed_tests() {
	awk '
	/^=== RUN binary / { b = $4; n = 0 }
	/^--- FAIL: / { out = out sep b ":" $3; sep = ", "; n++ }
	/^=== binary .* exited / { if (n == 0) { out = out sep $3 " (exit " $5 ")"; sep = ", " } }
	END { print out }' "$1"
}

# summary_line MODE KERNEL PASSED FAILED SKIPPED prints the line run.sh and
# make test look for.
summary_line() {
	echo "VM ($1, kernel $2): $3 tests passed, $4 failed, $5 skipped"
}
