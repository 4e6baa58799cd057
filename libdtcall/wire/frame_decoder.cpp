#include "wire/wire.hpp"

namespace dtcall::wire {

std::uint32_t announced_length(const std::uint8_t* header) {
    return (std::uint32_t(header[24]) << 24) | (std::uint32_t(header[25]) << 16) |
           (std::uint32_t(header[26]) << 8) | std::uint32_t(header[27]);
}

void FrameDecoder::feed(const std::uint8_t* data, std::size_t size) {
    // Compact first so the buffer holds at most one partial frame plus the new bytes.
    if (start_ > 0) {
        buffer_.erase(buffer_.begin(), buffer_.begin() + std::ptrdiff_t(start_));
        start_ = 0;
    }
    buffer_.insert(buffer_.end(), data, data + size);
}

FrameDecoder::Status FrameDecoder::next(Bytes& frame) {
    std::size_t available = buffer_.size() - start_;
    if (available < frame_header_size) return Status::need_more;
    const std::uint8_t* head = buffer_.data() + start_;
    std::uint32_t length = announced_length(head);
    if (length == 0) return Status::empty_frame;
    if (length > max_plaintext_) return Status::too_large;
    std::size_t total = frame_overhead + length;
    if (available < total) return Status::need_more;
    frame.assign(head, head + total);
    start_ += total;
    if (start_ == buffer_.size()) {
        // Nothing partial left: give the memory back. A hundred thousand idle
        // connections must not each keep a read buffer.
        Bytes().swap(buffer_);
        start_ = 0;
    }
    return Status::frame;
}

}  // namespace dtcall::wire
