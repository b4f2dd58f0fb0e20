# Third-party libraries, found once here and linked PRIVATE by the targets
# that need them. Installed by scripts/setup.sh.
find_package(PkgConfig REQUIRED)
pkg_check_modules(EXT2FS REQUIRED IMPORTED_TARGET ext2fs com_err)
# The three crypto libraries are used by layers/fde only, each from its
# backend files (layers/fde/src/crypto.h): libgcrypt AES-XTS, hashes and
# PBKDF2, libargon2 Argon2, libsodium secure memory and random. OpenSSL is
# not in the product: it is bench/fde's XTS speed anchor and a test oracle.
pkg_check_modules(GCRYPT REQUIRED IMPORTED_TARGET libgcrypt)
pkg_check_modules(ARGON2 REQUIRED IMPORTED_TARGET libargon2)
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium)
pkg_check_modules(LIBARCHIVE REQUIRED IMPORTED_TARGET libarchive)
pkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash)
find_package(OpenSSL 3 REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(CLI11 REQUIRED)
find_package(Catch2 2 REQUIRED)
find_package(Threads REQUIRED)
# nbdkit's plugin header (nbdkit-plugin.h) for the NBD front end (nbd/);
# the server itself is run by `stack serve`, found at run time.
pkg_check_modules(NBDKIT REQUIRED IMPORTED_TARGET nbdkit)
