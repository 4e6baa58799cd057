#include "media_generator.hpp"

#include "proc_stats.hpp"
#include "shared_media.hpp"

#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>

namespace dtbench {
namespace {

constexpr std::uint32_t magic = 0x4D425444;  // "DTBM"
constexpr unsigned batch = 64;               // datagrams per recvmmsg/sendmmsg
constexpr int receive_rounds = 8;            // recvmmsg calls per socket per wakeup
constexpr std::uint64_t timer_tag = ~0ull;
// A paced wakeup sends what is due, but never more than this before it
// looks at arrivals again, so a stall cannot turn into a receive backlog.
constexpr int max_sends_per_wakeup = 4096;
// Open loop with a socket per party: datagrams per party per sendmmsg.
constexpr unsigned own_socket_burst = 16;
// Control data per received datagram: IP_PKTINFO and SCM_TIMESTAMPNS.
constexpr std::size_t receive_control_size = 128;

std::int64_t realtime_ns() {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return std::int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// When the kernel queued the datagram (SO_TIMESTAMPNS, CLOCK_REALTIME), or 0.
std::int64_t kernel_arrival(const msghdr& message) {
    for (cmsghdr* c = CMSG_FIRSTHDR(&message); c; c = CMSG_NXTHDR(const_cast<msghdr*>(&message), c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            timespec ts;
            std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
            return std::int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
        }
    }
    return 0;
}

std::int64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void stamp(std::uint8_t* packet, std::uint32_t sender, std::uint32_t sequence, std::int64_t ns) {
    std::memcpy(packet, &magic, 4);
    std::memcpy(packet + 4, &sender, 4);
    std::memcpy(packet + 8, &sequence, 4);
    std::memcpy(packet + 12, &ns, 8);
}

class Engine {
public:
    Engine(const std::vector<MediaParty>& parties, const MediaSettings& settings, const SharedSocket* shared)
        : parties_(parties), settings_(settings), shared_(shared), sequence_(parties.size(), 0) {}

    ~Engine() {
        if (epoll_ >= 0) ::close(epoll_);
        if (timer_ >= 0) ::close(timer_);
    }

    MediaResult run() {
        if (parties_.empty()) return fail("no parties");
        epoll_ = epoll_create1(EPOLL_CLOEXEC);
        timer_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (epoll_ < 0 || timer_ < 0) return fail(std::string("epoll/timerfd: ") + std::strerror(errno));
        // Arrival times come from the kernel (SO_TIMESTAMPNS), so a datagram
        // that waits in the socket until we read it is not counted as latency.
        int one = 1;
        if (shared_) {
            setsockopt(shared_->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
            // Not watched while paced sending: every tick reads it anyway, and
            // being woken by each of the relay's batches would cost more CPU
            // than the packets. Watched again while draining.
            // Datagrams say which party they are for by their destination address.
            std::uint32_t highest = 0;
            for (const MediaParty& p : parties_) highest = std::max(highest, p.address);
            by_address_.assign(std::size_t(highest) + 1, ~0u);
            for (std::size_t i = 0; i < parties_.size(); ++i) by_address_[parties_[i].address] = std::uint32_t(i);
        } else {
            for (std::size_t i = 0; i < parties_.size(); ++i) {
                setsockopt(parties_[i].fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
                if (!watch(parties_[i].fd, i)) return fail(std::string("epoll_ctl: ") + std::strerror(errno));
            }
        }
        epoll_event tev{};
        tev.events = EPOLLIN;
        tev.data.u64 = timer_tag;
        epoll_ctl(epoll_, EPOLL_CTL_ADD, timer_, &tev);

        // The default timer slack (50 us) would blur the pacing we promise.
        prctl(PR_SET_TIMERSLACK, 1UL);
        prepare_buffers();
        result_.delivered_to.assign(parties_.size(), 0);

        std::int64_t cpu_before = own_cpu_ns();
        if (settings_.rate > 0) paced();
        else open_loop();
        drain();
        result_.generator_cpu_ns = own_cpu_ns() - cpu_before;
        return std::move(result_);
    }

private:
    MediaResult fail(const std::string& why) {
        result_.error = why;
        return std::move(result_);
    }

    bool watch(int fd, std::uint64_t tag) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = tag;
        return epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) == 0;
    }

    void prepare_buffers() {
        const std::size_t size = settings_.size;
        const std::size_t control = SharedMedia::control_size();
        std::size_t slot = std::max<std::size_t>(size, 2048);
        receive_buffers_.assign(batch * slot, 0);
        receive_control_.assign(batch * receive_control_size, 0);
        send_buffers_.assign(batch * size, 0);
        send_control_.assign(batch * control, 0);
        for (unsigned i = 0; i < batch; ++i) {
            receive_iov_[i] = {receive_buffers_.data() + i * slot, slot};
            send_iov_[i] = {send_buffers_.data() + i * size, size};
        }
        // Padding bytes that are not all zero, like compressed voice.
        for (std::size_t i = 0; i < send_buffers_.size(); ++i) send_buffers_[i] = std::uint8_t(i * 131 + 7);
    }

    void arm_timer(std::int64_t at_ns) {
        itimerspec spec{};
        spec.it_value.tv_sec = at_ns / 1000000000;
        spec.it_value.tv_nsec = at_ns % 1000000000;
        if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0) spec.it_value.tv_nsec = 1;
        timerfd_settime(timer_, TFD_TIMER_ABSTIME, &spec, nullptr);
    }

    // ---- sending ----------------------------------------------------------

    // Queues one datagram from `party` stamped `now`; sends when the batch is full.
    void queue(std::size_t party, std::int64_t now) {
        std::uint8_t* packet = send_buffers_.data() + queued_ * settings_.size;
        stamp(packet, std::uint32_t(party), ++sequence_[party], now);
        if (!shared_) {
            // One socket per party: nothing to batch across parties.
            ssize_t n = ::send(parties_[party].fd, packet, settings_.size, MSG_DONTWAIT);
            if (n == ssize_t(settings_.size)) ++result_.sent;
            else ++result_.send_failures;
            return;
        }
        mmsghdr& m = send_[queued_];
        m.msg_hdr = {};
        const sockaddr_in& to = shared_->nodes.empty() ? shared_->relay : shared_->nodes[parties_[party].node];
        m.msg_hdr.msg_name = const_cast<sockaddr_in*>(&to);
        m.msg_hdr.msg_namelen = sizeof to;
        m.msg_hdr.msg_iov = &send_iov_[queued_];
        m.msg_hdr.msg_iovlen = 1;
        m.msg_hdr.msg_control = send_control_.data() + queued_ * SharedMedia::control_size();
        m.msg_hdr.msg_controllen = SharedMedia::put_source(m.msg_hdr.msg_control, parties_[party].address);
        if (++queued_ == batch) flush();
    }

    void flush() {
        unsigned done = 0;
        while (done < queued_) {
            int n = sendmmsg(shared_->fd, send_ + done, queued_ - done, MSG_DONTWAIT);
            if (n <= 0) {
                if (n < 0 && errno == EINTR) continue;
                // The kernel refused the rest (send buffer full): counted, not retried.
                result_.send_failures += queued_ - done;
                break;
            }
            result_.sent += unsigned(n);
            done += unsigned(n);
        }
        queued_ = 0;
    }

    void paced() {
        const std::size_t n = parties_.size();
        const double interval = 1e9 / (settings_.rate * double(n));
        start_ = now_ns() + 5000000;  // 5 ms to settle
        end_ = start_ + std::int64_t(settings_.duration * 1e9);
        std::uint64_t next = 0;
        arm_timer(start_);
        std::int64_t last_report = start_;
        epoll_event events[512];
        for (;;) {
            int ready = epoll_wait(epoll_, events, 512, 100);
            if (ready < 0 && errno != EINTR) break;
            for (int e = 0; e < ready; ++e) {
                if (events[e].data.u64 == timer_tag) {
                    std::uint64_t expirations;
                    (void)!::read(timer_, &expirations, sizeof expirations);
                } else {
                    receive(std::size_t(events[e].data.u64));
                }
            }
            std::int64_t now = now_ns();
            int budget = max_sends_per_wakeup;
            for (;;) {
                std::int64_t due = start_ + std::int64_t(double(next) * interval);
                if (due >= end_ || due > now || budget-- == 0) break;
                std::int64_t send_time = now_ns();
                result_.lateness.record(send_time - due);
                queue(next % n, send_time);
                ++next;
            }
            if (shared_ && queued_) flush();
            if (shared_) receive(0);
            std::int64_t due = start_ + std::int64_t(double(next) * interval);
            if (due >= end_ && now >= end_) break;
            // Waking for every packet (every 20 us at 50 000 pps) would make
            // wakeups, not packets, the generator's cost, and wake the relay as
            // often: a packet waits at most one tick (recorded as lateness).
            arm_timer(std::max(due, now + std::max<std::int64_t>(settings_.tick_ns, 1000)));
            if (now - last_report >= 1000000000) {
                last_report = now;
                report(now);
            }
        }
        result_.send_seconds = double(std::min(now_ns(), end_) - start_) / 1e9;
    }

    void open_loop() {
        const std::size_t n = parties_.size();
        start_ = now_ns();
        end_ = start_ + std::int64_t(settings_.duration * 1e9);
        std::int64_t last_report = start_;
        std::int64_t now = start_;
        std::size_t party = 0;
        while (now < end_) {
            if (shared_) {
                // A batch spread over consecutive parties, then read what came back.
                std::int64_t stamp_ns = now_ns();
                for (unsigned i = 0; i < batch; ++i) {
                    queue(party, stamp_ns);
                    party = (party + 1) % n;
                }
                poll_receive();
            } else {
                for (std::size_t p = 0; p < n; ++p) {
                    std::int64_t stamp_ns = now_ns();
                    for (unsigned i = 0; i < own_socket_burst; ++i) {
                        stamp(send_buffers_.data() + i * settings_.size, std::uint32_t(p), ++sequence_[p], stamp_ns);
                        send_[i].msg_hdr = {};
                        send_[i].msg_hdr.msg_iov = &send_iov_[i];
                        send_[i].msg_hdr.msg_iovlen = 1;
                    }
                    int sent = sendmmsg(parties_[p].fd, send_, own_socket_burst, MSG_DONTWAIT);
                    unsigned ok = sent > 0 ? unsigned(sent) : 0;
                    result_.sent += ok;
                    result_.send_failures += own_socket_burst - ok;
                    // Read replies often enough that our own sockets do not overflow.
                    if (p % 8 == 7 || p + 1 == n) poll_receive();
                }
            }
            now = now_ns();
            if (now - last_report >= 1000000000) {
                last_report = now;
                report(now);
            }
        }
        result_.send_seconds = double(now - start_) / 1e9;
    }

    // ---- receiving ----------------------------------------------------------

    void poll_receive() {
        if (shared_) {
            receive(0);
            return;
        }
        epoll_event events[512];
        int ready = epoll_wait(epoll_, events, 512, 0);
        for (int e = 0; e < ready; ++e)
            if (events[e].data.u64 != timer_tag) receive(std::size_t(events[e].data.u64));
    }

    // After sending: collect stragglers until all arrived, nothing came for
    // 200 ms, or the drain time is up.
    void drain() {
        if (shared_) watch(shared_->fd, 0);
        std::int64_t limit = now_ns() + std::int64_t(settings_.drain * 1e9);
        std::int64_t last_arrival = now_ns();
        epoll_event events[512];
        for (;;) {
            std::int64_t now = now_ns();
            std::uint64_t arrived = result_.delivered + result_.misrouted;
            if (arrived >= result_.sent || now >= limit || now - last_arrival > 200000000) return;
            int ready = epoll_wait(epoll_, events, 512, 20);
            if (ready < 0 && errno != EINTR) return;
            for (int e = 0; e < ready; ++e)
                if (events[e].data.u64 != timer_tag) receive(std::size_t(events[e].data.u64));
            if (result_.delivered + result_.misrouted > arrived) last_arrival = now_ns();
        }
    }

    // `tag`: the party whose socket is readable, or 0 for the shared socket.
    void receive(std::size_t tag) {
        int fd = shared_ ? shared_->fd : parties_[tag].fd;
        for (int round = 0; round < receive_rounds; ++round) {
            for (unsigned i = 0; i < batch; ++i) {
                receive_[i].msg_hdr = {};
                receive_[i].msg_hdr.msg_iov = &receive_iov_[i];
                receive_[i].msg_hdr.msg_iovlen = 1;
                receive_[i].msg_hdr.msg_control = receive_control_.data() + i * receive_control_size;
                receive_[i].msg_hdr.msg_controllen = receive_control_size;
                receive_[i].msg_len = 0;
            }
            int got = recvmmsg(fd, receive_, batch, MSG_DONTWAIT, nullptr);
            if (got <= 0) return;  // drained, or an ICMP error surfaced: the next wakeup retries
            // The kernel stamps arrivals in CLOCK_REALTIME; our send times are
            // CLOCK_MONOTONIC. The offset between the clocks, taken now, maps
            // one onto the other (a clock adjustment can move it by
            // nanoseconds within one read, not more).
            std::int64_t monotonic = now_ns();
            std::int64_t offset = realtime_ns() - monotonic;
            for (int i = 0; i < got; ++i) {
                std::int64_t stamped = kernel_arrival(receive_[i].msg_hdr);
                std::int64_t arrived = stamped ? stamped - offset : monotonic;
                std::size_t receiver = tag;
                if (shared_) {
                    in_addr to;
                    std::size_t address = SharedMedia::destination(receive_[i].msg_hdr, to)
                                              ? SharedMedia::party_of(to)
                                              : ~std::size_t(0);
                    if (address >= by_address_.size() || by_address_[address] == ~0u) {
                        ++result_.foreign;
                        continue;
                    }
                    receiver = by_address_[address];
                }
                count(receiver, static_cast<const std::uint8_t*>(receive_iov_[i].iov_base), receive_[i].msg_len,
                      arrived);
            }
            if (unsigned(got) < batch) return;
        }
    }

    void count(std::size_t receiver, const std::uint8_t* data, std::size_t size, std::int64_t arrived) {
        std::uint32_t m, sender;
        std::int64_t sent_ns;
        if (size < media_header_size) {
            ++result_.foreign;
            return;
        }
        std::memcpy(&m, data, 4);
        std::memcpy(&sender, data + 4, 4);
        std::memcpy(&sent_ns, data + 12, 8);
        if (m != magic || sender >= parties_.size()) {
            ++result_.foreign;
        } else if (parties_[receiver].peer != sender) {
            ++result_.misrouted;
        } else {
            ++result_.delivered;
            ++result_.delivered_to[receiver];
            result_.latency.record(arrived - sent_ns);
        }
    }

    void report(std::int64_t now) {
        if (!settings_.progress) return;
        double elapsed = double(now - start_) / 1e9;
        char line[160];
        std::snprintf(line, sizeof line, "%.0f/%.0f s  sent %llu  delivered %llu (%.0f pps)", elapsed,
                      settings_.duration, static_cast<unsigned long long>(result_.sent),
                      static_cast<unsigned long long>(result_.delivered),
                      elapsed > 0 ? double(result_.delivered) / elapsed : 0.0);
        settings_.progress(line);
    }

    const std::vector<MediaParty>& parties_;
    const MediaSettings& settings_;
    const SharedSocket* shared_;
    std::vector<std::uint32_t> sequence_;
    std::vector<std::uint32_t> by_address_;  // shared: SharedMedia number -> party
    MediaResult result_;
    int epoll_ = -1;
    int timer_ = -1;
    std::int64_t start_ = 0;
    std::int64_t end_ = 0;
    std::vector<std::uint8_t> receive_buffers_, receive_control_;
    mmsghdr receive_[batch]{};
    iovec receive_iov_[batch]{};
    std::vector<std::uint8_t> send_buffers_, send_control_;
    mmsghdr send_[batch]{};
    iovec send_iov_[batch]{};
    unsigned queued_ = 0;
};

}  // namespace

void stamp_media(std::uint8_t* packet, std::uint32_t sender, std::uint32_t sequence, std::int64_t send_ns) {
    stamp(packet, sender, sequence, send_ns);
}

bool read_media(const std::uint8_t* packet, std::size_t size, std::uint32_t& sender, std::int64_t& send_ns) {
    std::uint32_t m;
    if (size < media_header_size) return false;
    std::memcpy(&m, packet, 4);
    std::memcpy(&sender, packet + 4, 4);
    std::memcpy(&send_ns, packet + 12, 8);
    return m == magic;
}

std::int64_t monotonic_ns() { return now_ns(); }

MediaResult run_media(const std::vector<MediaParty>& parties, const MediaSettings& settings,
                      const SharedSocket* shared) {
    Engine engine(parties, settings, shared);
    return engine.run();
}

}  // namespace dtbench
