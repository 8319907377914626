// kmpkg build, written for the Zig pinned in scripts/zig-version (0.15.x).
//
//   zig build            kmpkg into zig-out/bin, man pages into zig-out/share/man
//   zig build test       every tests/unit/test_<module>.c as its own Criterion
//                        executable, built with ASan + UBSan and fault injection,
//                        plus a sanitized kmpkg for the CLI tests; fails if any
//                        binary fails or reports "Tested: 0".
//
// Sources are found by listing src/ and tests/unit/ at configure time, so a new
// module or test file needs no edit here.
const std = @import("std");

const c_flags = [_][]const u8{
    "-std=c11",
    "-D_GNU_SOURCE",
    "-Wall",
    "-Wextra",
    "-Wpedantic",
    "-Wshadow",
    "-Wstrict-prototypes",
    "-Wmissing-prototypes",
    "-Werror",
    "-fno-omit-frame-pointer",
};

// kmpkg links its libraries statically, from the .a archives of the same
// Debian -dev packages: liblmdb, libyaml, libjansson, libarchive with the
// compression and hash libraries its tar and zip readers and its zstd writer
// need, and libcrypto. As shared libraries every command paid to load and
// relocate them: ~0.4 ms for the first three (list, status, rollback), and an
// install ~3.7 ms more for libarchive's chain (libxml2, ICU, libstdc++, which
// kmpkg never calls: only libarchive's xar writer uses them, and
// --gc-sections drops it) and libcrypto, plus ~0.7 ms to unload them. Linked
// in, only the code kmpkg calls is there, with no relocation at start-up. The
// price: a security update of one of these Debian packages needs kmpkg
// rebuilt. libgit2 and libcurl stay shared and loaded on first use
// (src/lazylib.c, src/fetch.c): their dependency chains are long (libssh2,
// mbedtls, krb5/GSSAPI, nghttp2...), and only the commands that read sources
// use them. The Criterion binaries link the same libraries shared: they must
// keep every section (Criterion's registrations), and without --gc-sections
// libarchive.a pulls in its xar writer and with it libxml2.
const static_libs = [_][]const u8{ "lmdb", "yaml", "jansson", "archive", "nettle", "zstd", "lz4", "bz2", "lzma", "z", "crypto" };
const shared_test_libs = [_][]const u8{ "lmdb", "yaml", "jansson", "archive", "crypto" };

// GCC's AddressSanitizer runtime (Debian libasan8) works with the
// instrumentation Zig's clang emits; Zig ships no ASan runtime of its own.
const asan_runtime = "/usr/lib/x86_64-linux-gnu/libasan.so.8";

fn listC(b: *std.Build, dir: []const u8, prefix: []const u8, exclude: []const []const u8) []const []const u8 {
    var list: std.ArrayList([]const u8) = .empty;
    var d = b.build_root.handle.openDir(dir, .{ .iterate = true }) catch return &.{};
    defer d.close();
    var it = d.iterate();
    outer: while (it.next() catch null) |e| {
        if (e.kind != .file or !std.mem.endsWith(u8, e.name, ".c")) continue;
        if (!std.mem.startsWith(u8, e.name, prefix)) continue;
        for (exclude) |x| if (std.mem.eql(u8, x, e.name)) continue :outer;
        list.append(b.allocator, b.dupe(e.name)) catch @panic("OOM");
    }
    std.mem.sort([]const u8, list.items, {}, struct {
        fn lt(_: void, a: []const u8, c: []const u8) bool {
            return std.mem.lessThan(u8, a, c);
        }
    }.lt);
    return list.items;
}

fn coreModule(
    b: *std.Build,
    target: std.Build.ResolvedTarget,
    optimize: std.builtin.OptimizeMode,
    sources: []const []const u8,
    testing: bool,
    static: bool,
) *std.Build.Module {
    const mod = b.createModule(.{ .target = target, .optimize = optimize, .link_libc = true });
    var flags: std.ArrayList([]const u8) = .empty;
    flags.appendSlice(b.allocator, &c_flags) catch @panic("OOM");
    if (testing) {
        flags.appendSlice(b.allocator, &.{ "-fsanitize=address", "-DKMPKG_TESTING=1" }) catch @panic("OOM");
    }
    mod.addCSourceFiles(.{ .root = b.path("src"), .files = sources, .flags = flags.items });
    mod.addIncludePath(b.path("include"));
    mod.addIncludePath(b.path("src"));
    // The ASan runtime must come first among the shared libraries.
    if (testing) mod.addObjectFile(.{ .cwd_relative = asan_runtime });
    if (static) {
        for (static_libs) |l| mod.linkSystemLibrary(l, .{
            .use_pkg_config = .no,
            .preferred_link_mode = .static,
            .search_strategy = .no_fallback,
        });
    } else {
        for (shared_test_libs) |l| mod.linkSystemLibrary(l, .{});
    }
    return mod;
}

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    const optimize = b.standardOptimizeOption(.{});

    const lib_sources = listC(b, "src", "", &.{"main.c"});
    var all_sources: std.ArrayList([]const u8) = .empty;
    all_sources.appendSlice(b.allocator, lib_sources) catch @panic("OOM");
    all_sources.append(b.allocator, "main.c") catch @panic("OOM");

    // The installed binary.
    const exe = b.addExecutable(.{
        .name = "kmpkg",
        .root_module = coreModule(b, target, optimize, all_sources.items, false, true),
    });
    // Needed in every mode, Debug included: see static_libs.
    exe.link_gc_sections = true;
    b.installArtifact(exe);
    b.installDirectory(.{
        .source_dir = b.path("man"),
        .install_dir = .{ .custom = "share/man" },
        .install_subdir = "",
    });

    // The test build: sanitized kmpkg for CLI tests, one Criterion binary per module.
    const test_step = b.step("test", "Run every unit and CLI test under ASan+UBSan");
    const test_exe = b.addExecutable(.{
        .name = "kmpkg-test",
        .root_module = coreModule(b, target, .Debug, all_sources.items, true, true),
    });
    test_exe.link_gc_sections = true;
    const install_test_exe = b.addInstallArtifact(test_exe, .{ .dest_dir = .{ .override = .{ .custom = "test" } } });
    test_step.dependOn(&install_test_exe.step);

    const tests = listC(b, "tests/unit", "test_", &.{});
    for (tests) |t| {
        var sources: std.ArrayList([]const u8) = .empty;
        sources.appendSlice(b.allocator, lib_sources) catch @panic("OOM");
        const mod = coreModule(b, target, .Debug, sources.items, true, false);
        mod.addCSourceFiles(.{
            .root = b.path("tests/unit"),
            .files = &.{t},
            .flags = &(c_flags ++ [_][]const u8{ "-fsanitize=address", "-DKMPKG_TESTING=1" }),
        });
        mod.addIncludePath(b.path("tests/unit"));
        mod.linkSystemLibrary("criterion", .{});
        const name = t[0 .. t.len - 2];
        const t_exe = b.addExecutable(.{ .name = name, .root_module = mod });
        // Criterion registers tests in a section the linker would otherwise collect.
        t_exe.link_gc_sections = false;
        const inst = b.addInstallArtifact(t_exe, .{ .dest_dir = .{ .override = .{ .custom = "test" } } });
        const run = b.addSystemCommand(&.{ "sh", "scripts/run-criterion" });
        run.addArtifactArg(t_exe);
        run.addArtifactArg(test_exe);
        run.setCwd(b.path("."));
        run.has_side_effects = true;
        run.step.dependOn(&inst.step);
        test_step.dependOn(&run.step);
    }
}
