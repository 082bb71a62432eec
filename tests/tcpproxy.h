#pragma once
// A loopback TCP proxy for tests: forwards both ways until frozen (a network that drops
// everything and closes nothing) or cut (every connection closed, new ones refused).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <utility>
#include <vector>

class TcpProxy
{
public:
    explicit TcpProxy(int targetPort) : m_target(targetPort)
    {
        m_listen = ::socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        ::setsockopt(m_listen, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::bind(m_listen, reinterpret_cast<sockaddr *>(&a), sizeof a);
        socklen_t length = sizeof a;
        ::getsockname(m_listen, reinterpret_cast<sockaddr *>(&a), &length);
        m_port = ntohs(a.sin_port);
        ::listen(m_listen, 16);
        m_thread = std::thread([this] { loop(); });
    }
    ~TcpProxy()
    {
        m_stop = true;
        m_thread.join();
        ::close(m_listen);
        for (auto &[a, b] : m_pairs) {
            ::close(a);
            ::close(b);
        }
    }
    int port() const { return m_port; }
    void freeze(bool frozen) { m_frozen = frozen; }

private:
    void loop()
    {
        std::vector<char> buffer(1 << 16);
        // Bounded by the owner's lifetime; each turn waits at most 20 ms on poll().
        while (!m_stop) {
            std::vector<pollfd> fds{{m_listen, POLLIN, 0}};
            for (auto &[a, b] : m_pairs) {
                fds.push_back({a, POLLIN, 0});
                fds.push_back({b, POLLIN, 0});
            }
            if (m_frozen) {
                ::poll(nullptr, 0, 20); // nothing passes, nothing is closed
                continue;
            }
            ::poll(fds.data(), fds.size(), 20);
            if (fds[0].revents & POLLIN) {
                const int client = ::accept(m_listen, nullptr, nullptr);
                const int hub = ::socket(AF_INET, SOCK_STREAM, 0);
                sockaddr_in a{};
                a.sin_family = AF_INET;
                a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                a.sin_port = htons(uint16_t(m_target));
                if (client >= 0 &&
                    ::connect(hub, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0) {
                    m_pairs.emplace_back(client, hub);
                } else {
                    ::close(client);
                    ::close(hub);
                }
                continue;
            }
            for (size_t i = 1; i < fds.size(); ++i) {
                if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                    continue;
                auto &pair = m_pairs[(i - 1) / 2];
                const int from = (i % 2) ? pair.first : pair.second;
                const int to = (i % 2) ? pair.second : pair.first;
                const ssize_t n = ::read(from, buffer.data(), buffer.size());
                if (n <= 0 || ::send(to, buffer.data(), size_t(n), MSG_NOSIGNAL) != n) {
                    ::close(pair.first);
                    ::close(pair.second);
                    m_pairs.erase(m_pairs.begin() + long((i - 1) / 2));
                    break;
                }
            }
        }
    }

    int m_target;
    int m_listen = -1;
    int m_port = 0;
    std::thread m_thread;
    std::atomic<bool> m_stop{false};
    std::atomic<bool> m_frozen{false};
    std::vector<std::pair<int, int>> m_pairs;
};
