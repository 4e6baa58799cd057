#include "io/new_file.hpp"

#include "io/system_error.hpp"

#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace dtcall {

Status write_new_file(const std::string& path, const std::string& text, mode_t mode) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        if (errno == EEXIST) return Error{ErrorCode::invalid_state, path + ": already exists, not overwriting"};
        return system_error(path + ": cannot create", errno);
    }
    (void)fchmod(fd, mode);
    std::size_t done = 0;
    while (done < text.size()) {
        ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int err = errno;
            ::close(fd);
            ::unlink(path.c_str());
            return system_error(path + ": cannot write", err);
        }
        done += std::size_t(n);
    }
    if (::close(fd) != 0) return system_error(path + ": cannot write", errno);
    return Done{};
}


}  // namespace dtcall
