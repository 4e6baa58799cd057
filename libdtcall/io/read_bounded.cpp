#include "io/system_error.hpp"
#include "io/read_bounded.hpp"

#include "crypto/crypto.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace dtcall {

Result<std::string> read_bounded(const std::string& path, std::size_t max_bytes, const char* what) {
    // O_NONBLOCK: opening a FIFO must not wait for a writer.
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return system_error(path + ": cannot open " + what, errno);
    struct stat st {};
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        return Error{ErrorCode::io, path + ": " + what + " is not a regular file"};
    }
    std::string text;
    char buffer[4096];
    for (;;) {
        ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int err = errno;
            ::close(fd);
            wipe(text);
            return system_error(path + ": cannot read " + what, err);
        }
        if (n == 0) break;
        if (text.size() + std::size_t(n) > max_bytes) {
            ::close(fd);
            wipe(text);
            return Error{ErrorCode::io, path + ": " + what + " larger than " + std::to_string(max_bytes) + " bytes"};
        }
        text.append(buffer, std::size_t(n));
    }
    std::memset(buffer, 0, sizeof buffer);
    ::close(fd);
    return text;
}

}  // namespace dtcall
