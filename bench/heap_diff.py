# Heap profile difference (jemalloc heap_v2 dumps): bytes and allocations per flow by stack.
# usage: heap_diff.py BEFORE.heap HOLD.heap FLOWS [unused] [TOP]
import sys, re, subprocess, collections
def parse(path):
    stacks = {}; maps = []
    lines = open(path).read().split('\n')
    i = 0; cur = None
    while i < len(lines):
        l = lines[i]
        if l.startswith('@ '):
            cur = tuple(int(x, 16) for x in l[2:].split())
        elif l.startswith('  t*:') and cur is not None:
            m = re.match(r'\s+t\*: (\d+): (\d+)', l)
            c, b = int(m.group(1)), int(m.group(2))
            s = stacks.setdefault(cur, [0, 0]); s[0] += c; s[1] += b
            cur = None
        elif l.startswith('MAPPED_LIBRARIES'):
            for ml in lines[i+1:]:
                p = ml.split()
                if len(p) >= 6 and 'x' in p[1]:
                    a, e = (int(x, 16) for x in p[0].split('-'))
                    maps.append((a, e, int(p[2], 16), p[5]))
            break
        i += 1
    return stacks, maps
base, _ = parse(sys.argv[1]); hold, maps = parse(sys.argv[2]); n = int(sys.argv[3])
binary = sys.argv[4] if len(sys.argv) > 4 else None
diff = {}
for k, v in hold.items():
    b = base.get(k, [0, 0])
    dc, db = v[0] - b[0], v[1] - b[1]
    if db > 0: diff[k] = (dc, db)
total = sum(d[1] for d in diff.values())
print(f"total delta {total} B = {total/n:.0f} B per flow")
def where(a):
    for s, e, off, path in maps:
        if s <= a < e: return path, a - s + off
    return None, a
cache = {}
def sym(a):
    if a in cache: return cache[a]
    path, off = where(a)
    if not path: cache[a] = hex(a); return cache[a]
    r = subprocess.run(['addr2line', '-f', '-C', '-i', '-e', path, hex(off - 1)], capture_output=True, text=True).stdout.split('\n')
    names = []
    for j in range(0, len(r) - 1, 2):
        fn = r[j]; loc = r[j+1].split('/')[-1]
        fn = re.sub(r'<[^<>]*(<[^<>]*(<[^<>]*>[^<>]*)*>[^<>]*)*>', '<>', fn)[:110]
        names.append(f"{fn} [{loc}]")
    cache[a] = ' <- '.join(names) if names else hex(a)
    if 'jemalloc' in path: cache[a] = 'JE'
    return cache[a]
top = sorted(diff.items(), key=lambda kv: -kv[1][1])
lim = int(sys.argv[5]) if len(sys.argv) > 5 else 40
for k, (dc, db) in top[:lim]:
    frames = [sym(a) for a in k]
    frames = [f for f in frames if f != 'JE']
    flat = ' <- '.join(frames)
    parts = flat.split(' <- ')
    key = [p for p in parts if re.search(r'sluice|nghttp2|SSL|ssl|BIO|CRYPTO|spdlog|co_spawn_entry|async_result<|object_pool|operator new', p)]
    first = parts[0][:60]
    print(f"{db/n:7.0f} B/flow {dc/n:5.2f}x avg {db/max(dc,1):6.0f} | {first} | " + ' <- '.join(x[:90] for x in key[:4]))
