# bench/report.awk: turns bench/run.sh's raw rows (tab-separated) into the
# markdown tables of bench/results.md. Run as:
#   awk -F'\t' -v hz=CLK_TCK -v lcpu=LOAD_CORE -v pcpu=PROXY_CORE -f report.awk RAW
function ms(us) { return us < 10000 ? sprintf("%.3f", us / 1000) : sprintf("%.1f", us / 1000) }
function ratio(a, b) { return (b > 0 && a >= 0) ? sprintf("%.2f", a / b) : "—" }
function bodyname(b) { return b == "64k" ? "64 KiB body" : "small body (16 B)" }
function protoname(k) {
	if (k == "wrk") return "HTTP/1.1, wrk, upstreams on the proxy's core"
	if (k == "wrk-own") return "HTTP/1.1, wrk, proxy on its own core"
	return "h2c, h2load"
}
function median(i, a,    m, k, j, v, x) {
	m = nr[i]
	for (k = 1; k <= m; k++) v[k] = a[i, k]
	for (k = 2; k <= m; k++) {
		x = v[k]
		for (j = k - 1; j >= 1 && v[j] > x; j--) v[j + 1] = v[j]
		v[j + 1] = x
	}
	return m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
}
# A case measured in several rounds (column 16) is one row: requests, time
# and CPU summed over its rounds, latencies the rounds' medians.
{
	rows++
	key = $1 SUBSEP $2 SUBSEP $3 SUBSEP $4
	if (!((key, $5) in idx)) {
		n++
		idx[key, $5] = n
		kind[n] = $1; body[n] = $2; hdr[n] = $3; load[n] = $4; tgt[n] = $5
	}
	i = idx[key, $5]
	r = ++nr[i]
	req[i] += $6; dur[i] += $7; err[i] += $10; mis[i] += $11
	if ($12 < 0) noticks[i] = 1; else ticks[i] += $12
	rp50[i, r] = $8; rp99[i, r] = $9
	rcpu[i, r] = $12 < 0 ? -1 : $12 * 1e6 / hz / $6
	if ($14) other[i] = 1
	fg[i] = r == 1 ? $15 : fg[i] ", " $15
	split($15, f, "/")
	f0sum += f[1]; if (f[1] > f0max) f0max = f[1]
	f1sum += f[2]; if (f[2] > f1max) f1max = f[2]
}
END {
	for (i = 1; i <= n; i++) {
		rps[i] = req[i] / (dur[i] / 1e6)
		cpu[i] = noticks[i] ? -1 : ticks[i] * 1e6 / hz / req[i]
		p50[i] = median(i, rp50); p99[i] = median(i, rp99)
	}
	printf "Other processes' CPU during the measured runs (busy time not accounted to the bench's own processes, %% of the core; the *other %%* column): "
	printf "load-generator core %s mean %.0f%%, max %.0f%%; proxy core %s mean %.0f%%, max %.0f%%.\n\n", lcpu, f0sum / rows, f0max, pcpu, f1sum / rows, f1max
	print "## Summary"
	print ""
	print "Geometric mean over the cases below (min–max in parentheses)."
	print ""
	print "| protocol | proxy | req/s ÷ nginx | CPU µs/req ÷ nginx | req/s ÷ direct |"
	print "|---|---|---|---|---|"
	nsp = split("wrk intercept-proxy|wrk haproxy|wrk-own intercept-proxy|wrk-own haproxy|h2 intercept-proxy|h2 intercept-proxy --h2c|h2 haproxy", sp, "|")
	for (s = 1; s <= nsp; s++) {
		kk = substr(sp[s], 1, index(sp[s], " ") - 1); t = substr(sp[s], index(sp[s], " ") + 1)
		m = 0; lr = lc = ld = 0
		rmin = cmin = dmin = 1e9; rmax = cmax = dmax = 0
		for (i = 1; i <= n; i++) {
			if (kind[i] != kk || tgt[i] != t) continue
			k = kind[i] SUBSEP body[i] SUBSEP hdr[i] SUBSEP load[i]
			g = idx[k, "nginx"]; d = idx[k, "direct"]
			r = rps[i] / rps[g]; c = cpu[i] / cpu[g]; q = rps[i] / rps[d]
			lr += log(r); lc += log(c); ld += log(q); m++
			if (r < rmin) rmin = r; if (r > rmax) rmax = r
			if (c < cmin) cmin = c; if (c > cmax) cmax = c
			if (q < dmin) dmin = q; if (q > dmax) dmax = q
		}
		if (m == 0) continue
		printf "| %s (%d cases) | %s | %.2f (%.2f–%.2f) | %.2f (%.2f–%.2f) | %.2f (%.2f–%.2f) |\n",
			protoname(kk), m, t,
			exp(lr / m), rmin, rmax, exp(lc / m), cmin, cmax, exp(ld / m), dmin, dmax
	}
	print ""
	last = ""
	for (i = 1; i <= n; i++) {
		sect = kind[i] SUBSEP body[i] SUBSEP hdr[i]
		if (sect != last) {
			last = sect
			print ""
			if (kind[i] ~ /^wrk/) {
				printf "## HTTP/1.1 (wrk), %s, %s, %s\n\n", kind[i] == "wrk" ? "upstreams on the proxy's core" : "proxy on its own core", bodyname(body[i]),
					hdr[i] == "yes" ? "header set (→ laptop)" : "no header (→ app)"
				print "| conns | target | req/s | p50 ms | p99 ms | proxy CPU µs/req | req/s ÷ nginx | req/s ÷ direct | CPU ÷ nginx | rounds ≤ nginx | errors | other % (core " lcpu "/" pcpu ") |"
			} else {
				printf "## h2c (h2load, prior knowledge), %s, no header (→ app)\n\n", bodyname(body[i])
				print "| clients×streams | target | req/s | p50 ms | p99 ms | proxy CPU µs/req | req/s ÷ nginx | req/s ÷ direct | CPU ÷ nginx | rounds ≤ nginx | errors | other % (core " lcpu "/" pcpu ") |"
			}
			print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
		}
		k = kind[i] SUBSEP body[i] SUBSEP hdr[i] SUBSEP load[i]
		g = idx[k, "nginx"]; d = idx[k, "direct"]
		errnote = mis[i] > 0 ? sprintf(" (%d misrouted)", mis[i]) : ""
		note = other[i] ? " *" : ""
		won = "—"
		if (nr[i] > 1 && tgt[i] != "nginx" && nr[g] == nr[i]) {
			w = 0
			for (r = 1; r <= nr[i]; r++) if (rcpu[i, r] >= 0 && rcpu[i, r] <= rcpu[g, r]) w++
			won = w " of " nr[i]
		}
		printf "| %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %d%s | %s%s |\n",
			load[i], tgt[i], rps[i], ms(p50[i]), ms(p99[i]),
			cpu[i] < 0 ? "—" : sprintf("%.1f", cpu[i]),
			ratio(rps[i], rps[g]), ratio(rps[i], rps[d]),
			cpu[i] < 0 ? "—" : ratio(cpu[i], cpu[g]), won, err[i], errnote, fg[i], note
		if (other[i]) anyother = 1
	}
	if (anyother) {
		print ""
		print "\\* another `go test` / `go build` was running on the machine during this run."
	}
}
