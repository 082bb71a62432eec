#include "theme.h"

#include <QApplication>
#include <QEvent>
#include <QGuiApplication>
#include <QList>
#include <QPointer>
#include <QStyle>
#include <QStyleFactory>
#include <QWidget>

#include <algorithm>
#include <array>
#include <cmath>
#include <memory>

namespace opconsole {

namespace {

// sRGB channel (0..1) to linear light (WCAG 2.x).
double linear(double c)
{
    return c <= 0.04045 ? c / 12.92 : std::pow((c + 0.055) / 1.055, 2.4);
}

// a + (b - a) * t, channel by channel.
QColor mix(const QColor &a, const QColor &b, double t)
{
    return QColor::fromRgbF(float(a.redF() + (b.redF() - a.redF()) * t),
                            float(a.greenF() + (b.greenF() - a.greenF()) * t),
                            float(a.blueF() + (b.blueF() - a.blueF()) * t));
}

// The backgrounds coloured text is drawn on: table cells (plain and alternate rows) and
// labels on a window.
std::array<QColor, 3> backgroundsOf(const QPalette &palette)
{
    return {palette.color(QPalette::Base), palette.color(QPalette::AlternateBase),
            palette.color(QPalette::Window)};
}

double worstContrast(const QColor &text, const QPalette &palette)
{
    double worst = 21;
    for (const QColor &background : backgroundsOf(palette))
        worst = std::min(worst, contrastRatio(text, background));
    return worst;
}

// Each tone's shade for light backgrounds (dark enough on white and on Fusion's light
// grey window) and for dark ones (light enough on a near-black base).
struct Shades
{
    QRgb onLight;
    QRgb onDark;
};
constexpr Shades shadesOf(Tone tone)
{
    switch (tone) {
    case Tone::Problem:
        return {0xb0'1a'25, 0xff'7b'72};
    case Tone::Attention:
        return {0x93'49'00, 0xff'a3'48};
    case Tone::Good:
        return {0x1a'6e'34, 0x57'e3'89};
    }
    return {0x00'00'00, 0xff'ff'ff};
}

QColor computeTone(Tone tone, const QPalette &palette)
{
    const bool dark = isDark(palette);
    const Shades shades = shadesOf(tone);
    const QColor start = QColor::fromRgb(dark ? shades.onDark : shades.onLight);
    // A palette of other colours (a desktop's own theme) may need more: move towards white
    // on dark backgrounds, black on light ones, in small steps so that the hue stays as long
    // as it can. The end (white or black) is the best any colour does on these backgrounds.
    const QColor end = dark ? QColor(Qt::white) : QColor(Qt::black);
    constexpr int Steps = 20;
    for (int step = 0; step < Steps; ++step) {
        const QColor candidate = mix(start, end, double(step) / Steps);
        if (worstContrast(candidate, palette) >= MinTextContrast)
            return candidate;
    }
    return end;
}

// The application's palette changed: the themed style sheets are made again. One watcher
// for every widget that has one, on the application object (where Qt announces the change).
class PaletteWatcher final : public QObject
{
public:
    static PaletteWatcher *instance()
    {
        // A child of the application: gone with it, made again for the next one. GUI thread.
        static QPointer<PaletteWatcher> watcher;
        auto *app = QCoreApplication::instance();
        if (!app)
            return nullptr;
        if (!watcher) {
            watcher = new PaletteWatcher(app);
            app->installEventFilter(watcher);
        }
        return watcher;
    }

    void follow(QWidget *widget)
    {
        m_widgets.removeAll(nullptr);
        if (!m_widgets.contains(widget))
            m_widgets.append(widget);
    }

    static void apply(QWidget *widget)
    {
        const QString sheet = widget->property(SheetProperty).toString();
        widget->setStyleSheet(themedStyleSheet(sheet, QGuiApplication::palette()));
    }

    static constexpr const char *SheetProperty = "opconsoleThemedStyleSheet";

protected:
    bool eventFilter(QObject *watched, QEvent *event) override
    {
        if (watched == QCoreApplication::instance() &&
            event->type() == QEvent::ApplicationPaletteChange) {
            m_widgets.removeAll(nullptr);
            // A copy: a style sheet change may run code that themes another widget.
            const QList<QPointer<QWidget>> widgets = m_widgets;
            for (const QPointer<QWidget> &widget : widgets) {
                if (widget)
                    apply(widget);
            }
        }
        return false;
    }

private:
    using QObject::QObject;
    QList<QPointer<QWidget>> m_widgets;
};

QString iconFile(StateIconKind kind)
{
    switch (kind) {
    case StateIconKind::Pending:
        return QStringLiteral("pending");
    case StateIconKind::Acked:
        return QStringLiteral("acked");
    case StateIconKind::Rejected:
        return QStringLiteral("rejected");
    case StateIconKind::Expired:
        return QStringLiteral("expired");
    case StateIconKind::NotConnected:
        return QStringLiteral("not-connected");
    case StateIconKind::Disconnected:
        return QStringLiteral("disconnected");
    case StateIconKind::Cancelled:
        return QStringLiteral("cancelled");
    case StateIconKind::Refused:
        return QStringLiteral("refused");
    case StateIconKind::Unknown:
        return QStringLiteral("unknown");
    case StateIconKind::LateAck:
        return QStringLiteral("late-ack");
    case StateIconKind::AwaitingApproval:
        return QStringLiteral("awaiting-approval");
    case StateIconKind::Count:
        break;
    }
    return {};
}

} // namespace

double relativeLuminance(const QColor &colour)
{
    const QColor c = colour.toRgb();
    return 0.2126 * linear(c.redF()) + 0.7152 * linear(c.greenF()) + 0.0722 * linear(c.blueF());
}

double contrastRatio(const QColor &a, const QColor &b)
{
    const double la = relativeLuminance(a);
    const double lb = relativeLuminance(b);
    return (std::max(la, lb) + 0.05) / (std::min(la, lb) + 0.05);
}

bool isDark(const QPalette &palette)
{
    return relativeLuminance(palette.color(QPalette::Base)) <
           relativeLuminance(palette.color(QPalette::Text));
}

QColor toneColour(Tone tone, const QPalette &palette)
{
    return computeTone(tone, palette);
}

QColor toneColour(Tone tone)
{
    // Models ask for every painted cell: computed once per application palette. GUI thread
    // only, like the models that ask.
    static qint64 cachedKey = -1;
    static std::array<QColor, 3> cached;
    const QPalette palette = QGuiApplication::palette();
    if (palette.cacheKey() != cachedKey) {
        for (const Tone t : {Tone::Problem, Tone::Attention, Tone::Good})
            cached[size_t(t)] = computeTone(t, palette);
        cachedKey = palette.cacheKey();
    }
    return cached[size_t(tone)];
}

BannerColours bannerColours(const QPalette &palette)
{
    // Amber, as before on light palettes; a dark amber with light text on dark ones. Both
    // pairs are far above MinTextContrast (tst_theme checks).
    if (isDark(palette))
        return {QColor(0x4d, 0x33, 0x00), QColor(0xff, 0xd9, 0xa3), QColor(0xa8, 0x6b, 0x12)};
    return {QColor(0xfd, 0xe2, 0xb8), QColor(0x5a, 0x32, 0x00), QColor(0xe0, 0xa0, 0x40)};
}

QString toneTextStyle(Tone tone)
{
    return QStringLiteral("color: %1;").arg(toneColour(tone).name());
}

QString themedStyleSheet(const QString &sheet, const QPalette &palette)
{
    if (!sheet.contains(QLatin1Char('@')))
        return sheet;
    const BannerColours banner = bannerColours(palette);
    QString out = sheet;
    // Longest names first: none is a prefix of another, but keep it that way by order.
    const std::pair<const char *, QColor> names[] = {
        {"@bannerBackground", banner.background},
        {"@bannerBorder", banner.border},
        {"@bannerText", banner.text},
        {"@attention", toneColour(Tone::Attention, palette)},
        {"@problem", toneColour(Tone::Problem, palette)},
        {"@good", toneColour(Tone::Good, palette)},
    };
    for (const auto &[name, colour] : names)
        out.replace(QLatin1String(name), colour.name());
    return out;
}

void setThemedStyleSheet(QWidget *widget, const QString &sheet)
{
    if (!widget)
        return;
    widget->setProperty(PaletteWatcher::SheetProperty, sheet);
    PaletteWatcher::apply(widget);
    if (PaletteWatcher *watcher = PaletteWatcher::instance(); watcher && !sheet.isEmpty())
        watcher->follow(widget);
}

QIcon consoleIcon(StateIconKind kind)
{
    const QString name = iconFile(kind);
    return name.isEmpty() ? QIcon() : QIcon(QStringLiteral(":/icons/%1.svg").arg(name));
}

StateIconKind iconKindOf(CommandState state)
{
    switch (state) {
    case CommandState::Pending:
        return StateIconKind::Pending;
    case CommandState::Acked:
        return StateIconKind::Acked;
    case CommandState::Rejected:
        return StateIconKind::Rejected;
    case CommandState::Expired:
        return StateIconKind::Expired;
    case CommandState::NotConnected:
        return StateIconKind::NotConnected;
    case CommandState::Disconnected:
        return StateIconKind::Disconnected;
    case CommandState::Cancelled:
        return StateIconKind::Cancelled;
    case CommandState::Refused:
        return StateIconKind::Refused;
    case CommandState::Unknown:
        return StateIconKind::Unknown;
    }
    return StateIconKind::Unknown;
}

StateIconKind iconKindOf(const CommandOutcome &outcome)
{
    return outcome.hasLateAck() ? StateIconKind::LateAck : iconKindOf(outcome.state);
}

QIcon applicationIcon()
{
    return QIcon(QStringLiteral(":/opconsole.svg"));
}

std::optional<Theme> parseTheme(const QString &name)
{
    if (name == QLatin1String("system"))
        return Theme::System;
    if (name == QLatin1String("light"))
        return Theme::Light;
    if (name == QLatin1String("dark"))
        return Theme::Dark;
    return std::nullopt;
}

QPalette lightPalette()
{
    // Fusion's own (light in Qt 6.4, whatever the desktop says).
    const std::unique_ptr<QStyle> fusion(QStyleFactory::create(QStringLiteral("Fusion")));
    return fusion ? fusion->standardPalette() : QPalette(Qt::white);
}

QPalette darkPalette()
{
    // Every role, so nothing is left from a light platform palette. Text on Base 14:1,
    // highlighted text on Highlight 4.9:1; disabled text dimmed but readable.
    QPalette p;
    const auto set = [&p](QPalette::ColorRole role, QRgb rgb) {
        p.setColor(QPalette::All, role, QColor::fromRgb(rgb));
    };
    set(QPalette::Window, 0x2b'2b'2b);
    set(QPalette::WindowText, 0xe6'e6'e6);
    set(QPalette::Base, 0x1e'1e'1e);
    set(QPalette::AlternateBase, 0x26'26'26);
    set(QPalette::ToolTipBase, 0x3a'3a'3a);
    set(QPalette::ToolTipText, 0xf0'f0'f0);
    set(QPalette::PlaceholderText, 0x8c'8c'8c);
    set(QPalette::Text, 0xe6'e6'e6);
    set(QPalette::Button, 0x35'35'35);
    set(QPalette::ButtonText, 0xe6'e6'e6);
    set(QPalette::BrightText, 0xff'ff'ff);
    set(QPalette::Light, 0x4a'4a'4a);
    set(QPalette::Midlight, 0x3e'3e'3e);
    set(QPalette::Mid, 0x26'26'26);
    set(QPalette::Dark, 0x1a'1a'1a);
    set(QPalette::Shadow, 0x0a'0a'0a);
    set(QPalette::Highlight, 0x2f'6f'cf);
    set(QPalette::HighlightedText, 0xff'ff'ff);
    set(QPalette::Link, 0x7a'b4'ff);
    set(QPalette::LinkVisited, 0xc5'9c'ff);
    const auto disabled = [&p](QPalette::ColorRole role, QRgb rgb) {
        p.setColor(QPalette::Disabled, role, QColor::fromRgb(rgb));
    };
    disabled(QPalette::WindowText, 0x80'80'80);
    disabled(QPalette::Text, 0x80'80'80);
    disabled(QPalette::ButtonText, 0x80'80'80);
    disabled(QPalette::PlaceholderText, 0x60'60'60);
    disabled(QPalette::Base, 0x26'26'26);
    disabled(QPalette::Highlight, 0x4a'4a'4a);
    disabled(QPalette::HighlightedText, 0xa0'a0'a0);
    disabled(QPalette::Light, 0x2b'2b'2b); // no light "etched" shadow under dimmed text
    return p;
}

void applyTheme(Theme theme)
{
    if (theme == Theme::System)
        return;
    QApplication::setStyle(QStyleFactory::create(QStringLiteral("Fusion")));
    QApplication::setPalette(theme == Theme::Dark ? darkPalette() : lightPalette());
}

} // namespace opconsole
