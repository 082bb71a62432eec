#pragma once

#include "commandoutcome.h"

#include <QColor>
#include <QIcon>
#include <QPalette>
#include <QString>

#include <optional>

class QWidget;

namespace opconsole {

// Colours that follow the palette (the desktop's, or --theme light/dark), and the console's
// icons. The rule: text that is coloured to draw the eye has at least MinTextContrast
// against every background it can be drawn on (Base, AlternateBase, Window), on light and
// dark palettes alike; and colour is never the only sign (text and icon say it too).

// WCAG 2.x: the relative luminance of an sRGB colour (0 black .. 1 white), and the contrast
// ratio of two colours, (L1 + 0.05) / (L2 + 0.05) with L1 the lighter: 1 to 21.
double relativeLuminance(const QColor &colour);
double contrastRatio(const QColor &a, const QColor &b);
// WCAG AA for normal text.
inline constexpr double MinTextContrast = 4.5;

// A palette is dark when its text is lighter than its background.
bool isDark(const QPalette &palette);

// What a coloured text says: a problem (rejected, expired, disconnected...), something that
// needs a look but is no alarm (late ack, awaiting approval), or good news.
enum class Tone
{
    Problem,
    Attention,
    Good
};
// A red, orange or green readable on the palette's Base, AlternateBase and Window colours
// (MinTextContrast or more whenever any colour can be; see theme.cpp).
QColor toneColour(Tone tone, const QPalette &palette);
// The same for the application's palette now; cached per palette, cheap enough for data().
QColor toneColour(Tone tone);

// A warning bar (a hub unreachable, bots awaiting approval): a tinted background with text
// and a border that read on it, light or dark as the palette is.
struct BannerColours
{
    QColor background;
    QColor text;
    QColor border;
};
BannerColours bannerColours(const QPalette &palette);

// A style sheet for a label's text in a tone, for the application's palette now
// ("color: #rrggbb").
QString toneTextStyle(Tone tone);
inline QString problemTextStyle()
{
    return toneTextStyle(Tone::Problem);
}

// Sets a style sheet whose colours follow the application's palette: @problem, @attention,
// @good, @bannerBackground, @bannerText and @bannerBorder in `sheet` are replaced by the
// colours above for the palette now, and again whenever the application's palette changes.
// Calling it again replaces the sheet; an empty sheet clears it.
void setThemedStyleSheet(QWidget *widget, const QString &sheet);
// The sheet with its @names replaced for this palette (what setThemedStyleSheet applies).
QString themedStyleSheet(const QString &sheet, const QPalette &palette);

// The console's icons (resources/icons/*.svg, compiled into the ui library): each has its
// own shape and a light halo outside a dark outline, so it reads on light and dark rows.
enum class StateIconKind
{
    Pending,
    Acked,
    Rejected,
    Expired,
    NotConnected,
    Disconnected,
    Cancelled,
    Refused,
    Unknown,
    LateAck,
    AwaitingApproval, // a bot waiting for an admin (the fleet)
    Count
};
QIcon consoleIcon(StateIconKind kind);
// The icon of a command state; of a command (a late ack shows as such, whatever the state).
StateIconKind iconKindOf(CommandState state);
StateIconKind iconKindOf(const CommandOutcome &outcome);
// The application's icon (resources/opconsole.svg).
QIcon applicationIcon();

// --theme: system (the platform's style and palette, as it is), light or dark (the Fusion
// style with a complete light or dark palette).
enum class Theme
{
    System,
    Light,
    Dark
};
std::optional<Theme> parseTheme(const QString &name); // nullopt when it is none of the three
QPalette lightPalette();
QPalette darkPalette();
// For a QApplication, before the first window: Light and Dark set the Fusion style and their
// palette; System leaves both alone.
void applyTheme(Theme theme);

} // namespace opconsole
